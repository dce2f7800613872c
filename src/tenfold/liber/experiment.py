"""LIBER reproduce and bench: wiring only (data -> UBSP -> UIL -> UIF -> backbones), no maths here.

What `reproduce` measures, each with its interval or as an exact count:
* the lineage's setting (KAR's code: users split 9:1, CTR samples without a user id): DIN + LIBER
  against DIN, over >= 3 seeds, interval by a paired bootstrap over test users;
* the per-user time split (with the user ID), the same comparison;
* a positive control: the backbone's history ratings hidden, so the summaries carry a statistic the
  backbone cannot see; if the fusion path works, LIBER must lift AUC there;
* the cost trade-off: LLM calls and prompt volume against staleness for LIBER, lazy KAR at several
  refresh periods and per-update recompute (`freshness.py`), with claims on that frontier;
* the answer cache: an immediate rerun makes no new LLM call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tenfold.core.io import cache_dir
from tenfold.core.plots import plt, save_figure
from tenfold.core.progress import say
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result
from tenfold.liber.freshness import (
    PERIODS,
    RefreshCost,
    dominates,
    interpolate,
    lazy_kar_cost,
    liber_cost,
    recompute_cost,
)
from tenfold.liber.llm import RULES_LABEL, RuleSummarizer, TextGenerator
from tenfold.liber.metrics import auc, claim_interval, gauc, logloss
from tenfold.liber.partition import CountRule, parse_rule, partition_history
from tenfold.liber.pipeline import (
    LiberConfig,
    build_model,
    encode_records,
    first_users,
    hide_ratings,
    interest_records,
    load_data,
    open_generator,
)
from tenfold.liber.samples import CTRData, build_ctr_data, with_split
from tenfold.liber.training import TextTables, fit, make_batch, predict

PAPER = {"title": "LIBER: Lifelong User Behavior Modeling Based on Large Language Models", "arxiv": "2411.14713"}


@dataclass(frozen=True)
class Profile:
    cfg: LiberConfig
    data: str = "auto"
    seeds: int = 3
    liber_ks: tuple[int, ...] = (5, 10, 20, 50)  # LIBER's own calls-vs-staleness curve (K = partition size)
    max_users: int | None = None


PROFILES = {
    "smoke": Profile(LiberConfig(epochs=1, batch_size=256, text_dim=16), data="synthetic:40", seeds=2,
                     liber_ks=(10, 20)),
    "quick": Profile(LiberConfig(epochs=2), seeds=3),
    "full": Profile(LiberConfig(epochs=20, batch_size=256, lr=1e-3, fusion="self+target"), seeds=5),
}
# (setting, model) -> what it trains; the three comparisons pair a "+liber" model with its backbone
RUNS = {
    ("users", "din"): "base", ("users", "din+liber"): "liber",
    ("users-norating", "din"): "base", ("users-norating", "din+liber"): "liber",
    ("time", "din"): "base", ("time", "din+liber"): "liber",
}
SETTINGS = {
    "users": "user-disjoint 9:1, no user-ID feature (KAR's setting)",
    "users-norating": "user-disjoint, history ratings hidden from the backbone (positive control)",
    "time": "per-user time split 80/10/10, with the user ID",
}


def _generator(llm: dict | None) -> tuple[TextGenerator, str, bool]:
    """(generator, label, fields?) for the run; the offline default is the rule stand-in."""
    if not llm:
        return RuleSummarizer(), "rule-based stand-in, not an LLM", True
    from tenfold.liber.llm import make_generator

    options = {k: v for k, v in llm.items() if k not in ("llm", "url", "model", "fields")}
    gen = make_generator(llm["llm"], llm.get("url"), llm.get("model"), **options)
    return gen, f"{gen.model_id} (a real LLM's summaries)", bool(llm.get("fields", True))


def reproduce(profile: str = "quick", seed: int = 0, out: Path = Path("reports/liber"), seeds: int | None = None,
              data: str | None = None, cfg: LiberConfig | None = None, llm: dict | None = None,
              max_users: int | None = None) -> Result:
    prof = PROFILES[profile]
    cfg = cfg or prof.cfg
    n_seeds = seeds or prof.seeds
    seed_list = list(range(seed, seed + n_seeds))
    out = Path(out)
    spec = data or prof.data
    ds, synthetic = load_data(spec, seed)
    ds = first_users(ds, max_users if max_users is not None else prof.max_users)
    base = build_ctr_data(ds, parse_rule(cfg.rule), cfg.hist_len, cfg.max_partitions, split="users", seed=seed)
    datasets = {"users": base, "users-norating": hide_ratings(base), "time": with_split(base, "time")}
    say(f"[liber] {ds.name}: {len(base.users)} users, {len(base.tensors['user'])} samples, "
        f"{base.n_partitions} closed partitions")

    gen, llm_label, fields = _generator(llm)
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in gen.model_id)
    cache_path = cache_dir("liber") / f"reproduce-{safe}-{ds.name}.sqlite"  # kept out of the report folder
    first = open_generator(gen, cache_path)
    records = interest_records(base, first, True, cfg.domain, fields)
    rerun = open_generator(gen, cache_path)  # an immediate rerun of UIL: must generate nothing
    interest_records(base, rerun, True, cfg.domain, fields)
    tables = {"users": TextTables(parts=encode_records(datasets["users"], records, cfg.encoder, cfg.text_dim, seed)),
              "time": TextTables(parts=encode_records(datasets["time"], records, cfg.encoder, cfg.text_dim, seed))}
    tables["users-norating"] = tables["users"]

    overlap = {s: _overlap(d) for s, d in datasets.items()}
    runs, scores = {}, {}
    start = time.perf_counter()
    for (setting, name), kind in RUNS.items():
        data_ = datasets[setting]
        table = tables[setting] if kind == "liber" else TextTables()
        for s in seed_list:
            say(f"[liber] {setting} {name} seed {s}")
            model = build_model(kind, "din", data_, cfg, 0 if table.parts is None else int(table.parts.shape[1]), s)
            history = fit(model, data_, table, cfg.epochs, cfg.batch_size, cfg.lr, s, desc=f"{setting} {name}")
            probs, y, users = predict(model, data_, table, "test")
            scores[(setting, name, s)] = (probs, y, users)
            runs.setdefault(setting, {}).setdefault(name, {})[str(s)] = {
                "auc": auc(y, probs), "logloss": logloss(y, probs), "gauc": gauc(y, probs, users), "n": int(len(y)),
                "best_valid_auc": history["best_valid_auc"], "epochs_run": history["epochs_run"]}
    train_seconds = time.perf_counter() - start

    result = Result(method="liber", kind="reproduce", paper=PAPER, profile=profile, seed=seed, seeds=seed_list,
                    config={**cfg.to_dict(), "data": ds.name, "synthetic": synthetic, "llm": gen.model_id,
                            "llm_label": llm_label, "label": "rating >= 4", "settings": SETTINGS,
                            "backbone": "din", "liber_ks": list(prof.liber_ks), "kar_periods": PERIODS})
    deltas = {}
    for setting, claim_id, statement in (
            ("users", "din_liber_beats_din_user_disjoint",
             "In the lineage's setting (users split 9:1, no user-ID feature, test users' histories only up to "
             "each sample), DIN + LIBER has a higher test AUC than DIN (null: the fused summaries add nothing)"),
            ("time", "din_liber_beats_din_time_split",
             "In the per-user time split (with the user ID), DIN + LIBER has a higher test AUC than DIN "
             "(null: the fused summaries add nothing)"),
            ("users-norating", "positive_control_fusion_lifts_auc",
             "Positive control: with the history ratings hidden from the backbone, the summaries (which carry "
             "the rating statistics) lift DIN's test AUC (null: the fusion path cannot carry information)")):
        interval, users_iv, seeds_iv = _auc_claim_interval(scores, setting, seed_list, seed)
        ours = float(np.mean([runs[setting]["din+liber"][str(s)]["auc"] for s in seed_list]))
        ref = float(np.mean([runs[setting]["din"][str(s)]["auc"] for s in seed_list]))
        result.claim(claim_id, statement, ours, ref, "DIN", better="higher", interval=interval)
        deltas[setting] = {"delta_auc": ours - ref, "interval": interval.bounds(), "user_bootstrap": users_iv.bounds(),
                           "seed_t_interval": None if seeds_iv is None else seeds_iv.bounds(),
                           "per_seed_delta": [runs[setting]["din+liber"][str(s)]["auc"]
                                              - runs[setting]["din"][str(s)]["auc"] for s in seed_list]}

    costs = _refresh_costs(base, cfg, prof.liber_ks)
    _frontier_claims(result, costs, cfg.rule)
    result.claim("rerun_makes_no_new_calls", "An immediate rerun of UIL generates no text again (all from the cache)",
                 rerun.calls, 1, "one call", better="lower", exact=True)
    result.metrics = {
        "settings": runs, "auc_differences": deltas, "test_train_overlap": overlap,
        "llm_calls_first_run": first.calls, "rerun_new_llm_calls": rerun.calls, "cache_hits": rerun.hits,
        "llm_usage": first.usage, "llm_cache": str(cache_path), "n_partitions": base.n_partitions,
        "refresh_costs": {k: c.to_dict() for k, c in costs.items()},
        "test_users": {s: int(len(np.unique(scores[(s, "din", seed_list[0])][2]))) for s in datasets},
        "train_seconds": round(train_seconds, 1),
    }
    result.notes.append(f"LLM backend: {llm_label}." + (
        f" {RULES_LABEL} The texts come from partition statistics, so gains measure the pipeline (partitions, "
        "cascade, fusion), not an LLM's world knowledge." if not llm else ""))
    if synthetic:
        why = "recbole (MovieLens-100K) is not installed" if spec == "auto" else f"--data {spec} was asked for"
        result.notes.append(f"synthetic data: {why}, so a seeded generator with era-drifting tastes was used.")
    result.notes.append("The paper's offline tables could not be read here; claims compare against our own baselines.")
    result.notes.append("AUC intervals: the union of a paired bootstrap over test users (all of a drawn user's samples, "
                        "AUC averaged over seeds) and a paired t interval over seeds; a claim holds only if both "
                        "exclude zero.")
    result.artifacts += [_plot_costs(costs, out), _plot_deltas(deltas, out)]
    return result


def _overlap(data: CTRData) -> dict:
    """Checks that test data never overlap training data (every count must be 0): `shared_samples`, test
    samples whose (user, item) rating is also a training sample; in the user-disjoint split
    `shared_users`, users with both training and test samples; in the time split `test_before_train`,
    test samples dated before their user's last training sample."""
    split, user, item, time_ = (data.tensors[k].tolist() for k in ("split", "user", "item", "time"))
    train = [i for i, s in enumerate(split) if s == 0]
    test = [i for i, s in enumerate(split) if s == 2]
    train_pairs = {(user[i], item[i]) for i in train}
    out = {"shared_samples": sum((user[i], item[i]) in train_pairs for i in test), "shared_users": None,
           "test_before_train": None}
    if data.split_mode == "users":
        out["shared_users"] = len({user[i] for i in train} & {user[i] for i in test})
    else:
        last_train: dict[int, float] = {}
        for i in train:
            last_train[user[i]] = max(last_train.get(user[i], float("-inf")), time_[i])
        out["test_before_train"] = sum(time_[i] < last_train.get(user[i], float("-inf")) for i in test)
    return out


def _auc_claim_interval(scores: dict, setting: str, seeds: list[int], seed: int):
    ours = [scores[(setting, "din+liber", s)][0] for s in seeds]
    ref = [scores[(setting, "din", s)][0] for s in seeds]
    _, y, users = scores[(setting, "din", seeds[0])]
    return claim_interval(ours, ref, y, users, seed=seed)


def _refresh_costs(data: CTRData, cfg: LiberConfig, ks: tuple[int, ...]) -> dict[str, RefreshCost]:
    costs = {"LIBER": liber_cost(data.histories, parse_rule(cfg.rule), f"LIBER {cfg.rule}")}
    for k in ks:
        costs[f"LIBER count:{k}"] = liber_cost(data.histories, CountRule(k), f"LIBER count:{k}")
    for name, period in PERIODS.items():
        costs[f"lazy KAR {name}"] = lazy_kar_cost(data.histories, period, f"lazy KAR {name}")
    costs["KAR recompute"] = recompute_cost(data.histories)
    return costs


def _frontier_claims(result: Result, costs: dict[str, RefreshCost], rule: str) -> None:
    """Claims on the calls-vs-staleness frontier (exact counts over the data)."""
    ours = costs["LIBER"]
    kar = [c for k, c in costs.items() if k.startswith(("lazy KAR", "KAR recompute"))]
    calls_ref = interpolate(kar, ours.staleness, "calls")
    lines_ref = interpolate(kar, ours.staleness, "prompt_lines")
    lazy = [c for k, c in costs.items() if k.startswith("lazy KAR")]
    dominating = [c.policy for c in lazy if dominates(c, ours)]
    result.claim("liber_calls_below_kar_frontier",
                 f"At LIBER's staleness ({ours.staleness:.1f} behaviours, {rule}), keeping KAR's whole-history summary "
                 "as fresh (lazy refresh periods and per-update recompute, interpolated) costs more LLM calls than "
                 "LIBER (null: LIBER is just another point on KAR's curve)",
                 ours.calls, calls_ref, "lazy KAR at equal staleness", better="lower", exact=True)
    result.claim("liber_prompt_volume_below_kar_frontier",
                 "At LIBER's staleness, KAR sends more behaviour lines to the LLM than LIBER (interpolated likewise)",
                 ours.prompt_lines, lines_ref, "lazy KAR at equal staleness", better="lower", exact=True)
    result.claim("no_lazy_kar_period_dominates_liber",
                 "No lazy-KAR refresh period has both fewer-or-equal calls and lower-or-equal staleness than LIBER "
                 f"(dominating periods: {', '.join(dominating) or 'none'})",
                 len(dominating), 1, "one dominating period", better="lower", exact=True)


def _plot_costs(costs: dict[str, RefreshCost], out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    lib = sorted((c for k, c in costs.items() if k.startswith("LIBER count:")), key=lambda c: c.staleness)
    kar = sorted((c for k, c in costs.items() if k.startswith(("lazy KAR", "KAR recompute"))), key=lambda c: c.staleness)
    ax.plot([c.staleness for c in kar], [c.calls for c in kar], "o-", color="tab:green", label="KAR: lazy periods, recompute")
    for c in kar:
        ax.annotate(c.policy.replace("lazy KAR ", "").replace("KAR ", ""), (c.staleness, c.calls), fontsize=7,
                    textcoords="offset points", xytext=(3, 3))
    ax.plot([c.staleness for c in lib], [c.calls for c in lib], "s-", color="tab:orange", label="LIBER: partition size K")
    for c in lib:
        ax.annotate(c.policy.replace("LIBER count:", "K="), (c.staleness, c.calls), fontsize=7,
                    textcoords="offset points", xytext=(3, -9))
    ours = costs["LIBER"]
    ax.plot([ours.staleness], [ours.calls], "*", ms=14, color="tab:red", label=f"LIBER as run ({ours.policy[6:]})")
    ax.set_yscale("log")
    ax.set_xlabel("mean staleness of the summary a sample uses (behaviours)")
    ax.set_ylabel("LLM calls (all users, whole stream)")
    ax.set_title("Keeping user summaries fresh: calls vs staleness")
    ax.legend(fontsize=7)
    save_figure(fig, out / "calls_vs_staleness.png")
    return "calls_vs_staleness.png"


def _plot_deltas(deltas: dict, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    names = list(deltas)
    mid = [deltas[n]["delta_auc"] for n in names]
    lo = [m - deltas[n]["interval"][0] for n, m in zip(names, mid, strict=True)]
    hi = [deltas[n]["interval"][1] - m for n, m in zip(names, mid, strict=True)]
    ax.errorbar(mid, range(len(names)), xerr=[lo, hi], fmt="o", color="tab:orange", capsize=4)
    ax.axvline(0, color="gray", lw=1)
    ax.set_yticks(range(len(names)), [SETTINGS[n] for n in names], fontsize=7)
    ax.set_xlabel("test AUC of DIN + LIBER minus DIN (95% claim interval: test users and seeds)")
    ax.set_title("LIBER's AUC difference per setting")
    save_figure(fig, out / "auc_difference.png")
    return "auc_difference.png"


def bench(profile: str = "quick", seed: int = 0, out: Path = Path("reports/bench/liber"), data: str | None = None) -> Result:
    prof = PROFILES[profile]
    cfg = prof.cfg
    ds, synthetic = load_data(data or prof.data, seed)
    data_ = build_ctr_data(ds, parse_rule(cfg.rule), cfg.hist_len, cfg.max_partitions, split="users", seed=seed)
    rule = parse_rule(cfg.rule)
    start = time.perf_counter()
    for u in data_.users:
        partition_history(data_.histories[u], rule)
    partition_users_s = len(data_.users) / (time.perf_counter() - start)
    torch.manual_seed(seed)
    tables = {"base": TextTables(), "liber": TextTables(parts=torch.randn(data_.n_partitions, cfg.text_dim))}
    rows = data_.rows("train")[: cfg.batch_size]
    steps, timing = {"smoke": 3, "quick": 10}.get(profile, 50), {}
    for variant in ("base", "liber"):
        model = build_model(variant, "din", data_, cfg, cfg.text_dim, seed)
        optim = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        batch = make_batch(data_, rows, tables[variant])
        for i in range(steps + 2):
            if i == 2:
                start = time.perf_counter()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
            optim.zero_grad()
            loss.backward()
            optim.step()
        timing[variant] = (time.perf_counter() - start) / steps
        if variant == "liber":
            with torch.no_grad():
                query = model.backbone.embed.target(batch)
                start = time.perf_counter()
                for _ in range(steps):
                    model.fusion(batch["part_table"], batch["part_slots"], query)
                fusion_users_s = steps * len(rows) / (time.perf_counter() - start)
    result = Result(method="liber", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={**cfg.to_dict(), "data": ds.name, "synthetic": synthetic, "steps": steps,
                            "threads": torch.get_num_threads()})
    result.metrics = {"partition_users_per_s": partition_users_s, "fusion_users_per_s": fusion_users_s,
                      "step_ms_din": 1000 * timing["base"], "step_ms_din_liber": 1000 * timing["liber"],
                      "fusion_overhead_ratio": timing["liber"] / timing["base"]}
    if synthetic:
        result.notes.append("synthetic data (a seeded generator with era-drifting tastes).")
    return result


register(MethodSpec(name="liber", title=PAPER["title"], arxiv=PAPER["arxiv"], reproduce=reproduce, bench=bench,
                    summary="Lifelong behaviour -> streaming partitions -> cascaded LLM summaries (text + fields) -> "
                            "attention fusion into any CTR backbone; offline default LLM is a rule-based stand-in."))
