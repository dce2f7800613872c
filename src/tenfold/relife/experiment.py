"""RELIFE reproduce and bench: simulated clicks with a per-user substitution trait, and logged
MovieLens-100K lists, kept apart; every model trained under the same budget on several seeds."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result
from tenfold.core.runtime import Timer, seed_everything, torch_threads

TITLE = "Beyond Positive History: Re-ranking with List-level Hybrid Feedback"
ARXIV = "2410.20778"
PAPER = {"title": TITLE, "arxiv": ARXIV}
BASELINE_NAMES = {"prm": "PRM", "dlcm": "DLCM", "setrank": "SetRank", "mir": "MIR"}
ABLATION_NAMES = {"relife-no-history": "history off", "relife-clicks-only": "clicks-only history",
                  "relife-no-cpe": "no comparison extractor", "relife-no-cl": "no contrastive loss"}
ORACLES = ("oracle-beta", "oracle-history", "oracle-mean", "oracle-sort")
CLAIM_METRICS = ("ndcg@5", "map@5")


@dataclass(frozen=True)
class Profile:
    """Sizes per profile (`smoke`: seconds, for tests and `make gpu-check`)."""

    max_users: int | None
    history_lists: int
    lists_per_user: int
    test_lists: int
    dim: int
    max_epochs: int
    batch_size: int
    lr: float
    patience: int
    ranker_epochs: int
    seeds: int
    draws: int  # simulator draws per test list for the intent / click metrics
    beta: float = 3.0  # the documented population mean of beta_u (0 or 2 beta per user)
    ranker_noise: float = 0.5
    taste_noise: float = 1.0
    signal: str = "intent"
    threads: int = 1  # tiny models: one thread avoids oversubscription on shared CPUs


PROFILES = {
    "smoke": Profile(max_users=40, history_lists=2, lists_per_user=5, test_lists=1, dim=8, max_epochs=1, batch_size=64,
                     lr=1e-2, patience=1, ranker_epochs=5, seeds=1, draws=2),
    "quick": Profile(max_users=600, history_lists=3, lists_per_user=8, test_lists=3, dim=16, max_epochs=5,
                     batch_size=128, lr=1e-2, patience=2, ranker_epochs=60, seeds=3, draws=16),
    "full": Profile(max_users=None, history_lists=4, lists_per_user=14, test_lists=4, dim=32, max_epochs=30,
                    batch_size=128, lr=3e-3, patience=4, ranker_epochs=300, seeds=5, draws=64, threads=2),
}


def _profile(name: str) -> Profile:
    if name not in PROFILES:
        raise InputError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def _settings(p: Profile, seed: int):
    from tenfold.data.lists import ClickModel, ListConfig, SimulatorConfig
    from tenfold.relife.train import TrainConfig

    lists = ListConfig(history_lists=p.history_lists, max_users=p.max_users, ranker_epochs=p.ranker_epochs, seed=seed)
    sim = SimulatorConfig(lists_per_user=p.lists_per_user, test_lists=p.test_lists, beta=p.beta,
                          ranker_noise=p.ranker_noise, taste_noise=p.taste_noise, click=ClickModel(eta=1.0, stop=0.5), seed=seed)
    train = TrainConfig(max_epochs=p.max_epochs, batch_size=p.batch_size, lr=p.lr, patience=p.patience, seed=seed)
    return lists, sim, train


def list_fingerprints(data) -> set:
    """One hash per list (user, items, scores): two splits share a list only if they share a fingerprint."""
    out = set()
    for u, items, scores in zip(data.user, data.items, data.scores, strict=True):
        out.add(hashlib.sha1(np.int64(u).tobytes() + items.tobytes() + scores.tobytes()).hexdigest())
    return out


def split_overlap(splits) -> dict:
    """How many test lists also appear in training or validation (must be 0, recorded in the result)."""
    test = list_fingerprints(splits.test)
    return {"test_in_train": len(test & list_fingerprints(splits.train)),
            "test_in_val": len(test & list_fingerprints(splits.val))}


def disjoint_splits(splits, regime: str) -> dict:
    """`split_overlap`, refused unless every count is 0 (checked before any training, recorded in the result)."""
    overlap = split_overlap(splits)
    if any(overlap.values()):
        raise RuntimeError(f"{regime} lists: test lists also appear in training or validation: {overlap}")
    return overlap


def score_test(splits, scores: np.ndarray, uniforms: dict | None) -> dict[str, np.ndarray]:
    """Per-list metrics of a model's scores: simulated lists are shown to the simulator, logged lists
    re-order their labels."""
    from tenfold.data.lists import ClickModel
    from tenfold.relife.metrics import logged_metrics, rerank_order, simulated_metrics

    test = splits.test
    if test.meta.get("regime") != "simulated":
        return logged_metrics(test.labels, test.mask, scores)
    return simulated_metrics(test.relevance, test.cats, test.mask, test.beta, ClickModel(**test.meta["click"]),
                             rerank_order(scores, test.mask), uniforms)


def oracle_metrics(splits, uniforms: dict) -> dict[str, dict[str, np.ndarray]]:
    """The simulator's oracles (they know r): greedy orders for the true beta_u, for the Bayes posterior of
    beta_u given the user's history, for the population mean beta (what an oracle that does not know
    the user can do), and for beta = 0 (sort by r, blind to the substitution)."""
    from tenfold.data.lists import ClickModel, greedy_order
    from tenfold.relife.metrics import simulated_metrics

    t = splits.test
    r = t.relevance.astype(np.float64)
    betas = {"oracle-beta": t.beta, "oracle-history": t.beta_history,
             "oracle-mean": np.full(len(t), t.meta["beta_mean"]), "oracle-sort": np.zeros(len(t))}
    click = ClickModel(**t.meta["click"])
    return {name: simulated_metrics(t.relevance, t.cats, t.mask, t.beta, click, greedy_order(r, t.cats, t.mask, b), uniforms)
            for name, b in betas.items()}


def run_regime(splits, models: tuple[str, ...], p: Profile, seeds: list[int], signal: str,
               uniforms: dict | None) -> tuple[dict, dict]:
    """Train every model on every seed; returns ({model: {metric: (lists, seeds)}}, {model: training record})."""
    from tenfold.core.progress import say
    from tenfold.relife.train import predict, train_model

    per_list: dict = {}
    record: dict = {}
    for name in models:
        columns, rec = [], {"best_epoch": [], "train_seconds": [], "val": []}
        for s in seeds:
            _, _, train_cfg = _settings(p, s)
            seed_everything(s)
            with Timer() as t:
                model, history = train_model(name, splits, train_cfg, signal, dim=p.dim)
            columns.append(score_test(splits, predict(model, splits.test), uniforms))
            rec["best_epoch"].append(history["best_epoch"])
            rec["val"].append(min(history["val"], default=None))
            rec["train_seconds"].append(round(t.seconds, 2))
        say(f"relife: {splits.test.meta['regime']} {name}: ndcg@5 "
            f"{np.mean([c['ndcg@5'].mean() for c in columns]):.4f} ({sum(rec['train_seconds']):.1f}s)")
        per_list[name] = {k: np.stack([c[k] for c in columns], 1) for k in columns[0]}
        record[name] = rec
    return per_list, record


def summarise(per_list: dict, record: dict | None = None) -> dict:
    """Mean of each metric over lists and seeds, plus per-seed means and the training record."""
    out = {}
    for name, table in per_list.items():
        row = {k: float(v.mean()) for k, v in table.items()}
        row["per_seed"] = {k: [float(x) for x in v.mean(0)] for k, v in table.items() if k in CLAIM_METRICS}
        out[name] = {**row, **((record or {}).get(name, {}))}
    return out


def user_bootstrap(ours: np.ndarray, users: np.ndarray, ref: np.ndarray | None = None, *,
                   statistic=None, seeds: int | None = None):
    """A 95% cluster bootstrap over users of per-list values: draw users with replacement and take all
    of each drawn user's lists (a user's lists share its traits, so they are not independent units).
    `ours` / `ref`: (lists,) or (lists, k) arrays on the same test lists, `users[i]` the owner of list i.
    The statistic is of the column means over the drawn lists (`statistic` maps the (k,) means to a number;
    default: the mean), so every list weighs the same whatever its user's count. With `ref`, the interval is
    of statistic(ours) - statistic(ref), paired (the same drawn users for both sides); without, of
    statistic(ours) against 0. BCa (its jackknife leaves out one user at a time) from `tenfold.core.stats`."""
    from tenfold.core.stats import Interval, one_sample, paired_bootstrap

    users = np.asarray(users).ravel()
    sides = [np.asarray(x, dtype=np.float64) for x in ((ours,) if ref is None else (ours, ref))]
    if any(x.shape[0] != users.size for x in sides):
        raise InputError(f"{users.size} list owners for {[x.shape[0] for x in sides]} lists: give one user per test list")
    _, owner = np.unique(users, return_inverse=True)
    counts = np.bincount(owner).astype(np.float64)

    def per_user(x: np.ndarray) -> np.ndarray:  # (users, k + 1): each user's sums of the k columns, then its list count
        x = x.reshape(users.size, -1)
        sums = np.zeros((counts.size, x.shape[1]))
        np.add.at(sums, owner, x)
        return np.column_stack([sums, counts])

    def stat(m: np.ndarray) -> float:
        means = m[:, :-1].sum(0) / m[:, -1].sum()
        return float(statistic(means) if statistic else means.mean())

    words = f"over {counts.size:,} users ({users.size:,} lists"
    words += f"; per-list values averaged over {seeds} seeds)" if seeds and seeds > 1 else ")"
    if ref is None:
        boot = one_sample(per_user(sides[0]), 0.0, statistic=stat, unit="user")
        words = f"bootstrap {words}"
    else:
        boot = paired_bootstrap(per_user(sides[0]), per_user(sides[1]), statistic=stat, unit="user")
        words = f"paired bootstrap {words}"
    return Interval(boot.lo, boot.hi, boot.estimate, words, boot.units, seeds)


def users_and_seeds_interval(ours: np.ndarray, ref: np.ndarray, users: np.ndarray):
    """A 95% interval of ours - ref, (lists, seeds) arrays on the same test lists, that must survive both
    noises: the hull of a paired cluster bootstrap over the lists' users (`user_bootstrap`, per-list values
    averaged over the seeds: the test-set noise) and, when both sides have 2+ seeds, a paired t interval
    over the per-seed means (each seed a fresh training run: the training noise). A verdict holds only if
    both intervals exclude 0."""
    from tenfold.core.stats import Interval, seed_interval

    seeds = max(ours.shape[1], ref.shape[1])
    boot = user_bootstrap(ours.mean(1), users, ref.mean(1), seeds=seeds)
    words = f"{boot.evidence} [{boot.lo:+.4f}, {boot.hi:+.4f}]"
    if ours.shape[1] < 2 or ours.shape[1] != ref.shape[1]:
        return Interval(boot.lo, boot.hi, boot.estimate, words, boot.units, seeds)
    per_seed = seed_interval(ours.mean(0), ref.mean(0), what="one training run each")
    return Interval(min(boot.lo, per_seed.lo), max(boot.hi, per_seed.hi), boot.estimate,
                    f"hull of a {words} and a {per_seed.evidence} [{per_seed.lo:+.4f}, {per_seed.hi:+.4f}]",
                    boot.units, seeds)


def add_claims(result: Result, simulated: dict, logged: dict, seeds: int, control: dict | None = None, *,
               users: dict[str, np.ndarray]) -> None:
    """The comparison claims of the issue, each with `users_and_seeds_interval`. `simulated` / `logged`:
    {model: {metric: (lists, seeds) array}} (oracles in `simulated` have one column); `control`: the same
    for RELIFE and RELIFE without the comparison extractor trained on the same lists simulated with
    beta = 0; `users`: {"simulated": ..., "logged": ...}, the owner of each test list (the bootstrap
    resamples users). Pure in its inputs, so tests can feed it nulls."""
    from tenfold.core.stats import Interval, seed_interval

    regimes = {"sim": (simulated, users["simulated"]), "logged": (logged, users["logged"])}

    def compare(cid: str, statement: str, regime: str, ours: str, ref: str, ref_name: str, metric: str) -> None:
        table, owners = regimes[regime]
        if ours not in table or ref not in table:
            return
        a, b = table[ours][metric], table[ref][metric]
        interval = users_and_seeds_interval(a, b, owners)
        result.claim(cid, statement, float(a.mean()), float(b.mean()), ref_name, better="higher", interval=interval,
                     evidence=interval.evidence)

    for regime, where in (("sim", "on the simulator's intent labels"), ("logged", "on logged ML-100K labels")):
        for metric in CLAIM_METRICS:
            for base, label in BASELINE_NAMES.items():
                compare(f"{regime}_{metric.replace('@', '')}_beats_{base}",
                        f"RELIFE's {metric.upper()} is above {label}'s {where} (null: no difference)",
                        regime, "relife", base, label, metric)
    compare("sim_oracle_headroom", "On the simulator, an oracle that knows each user's beta_u has a higher NDCG@5 than "
            "one that knows r but only the population mean beta (null: knowing the user does not matter)",
            "sim", "oracle-beta", "oracle-mean", "oracle with the mean beta", "ndcg@5")
    for name, label in ABLATION_NAMES.items():
        compare(f"sim_ablation_{name.removeprefix('relife-').replace('-', '_')}",
                f"RELIFE's NDCG@5 on the simulator is above RELIFE with {label} (null: the module earns nothing)",
                "sim", "relife", name, f"RELIFE, {label}", "ndcg@5")
    needed = ("relife", "relife-no-cpe", "oracle-beta", "oracle-sort")
    if all(k in simulated for k in needed):
        cols = np.stack([simulated[k]["ndcg@5"].mean(1) for k in needed], 1)
        gap = cols[:, 2].mean() - cols[:, 3].mean()

        def share(means: np.ndarray) -> float:  # the column means of (relife, no-cpe, oracle-beta, oracle-sort)
            g = means[2] - means[3]
            return float((means[0] - means[1]) / g) if g > 0 else 0.0

        boot = user_bootstrap(cols, users["simulated"], statistic=share, seeds=seeds)
        interval, words = boot, f"{boot.evidence} [{boot.lo:+.3f}, {boot.hi:+.3f}]"
        gains = simulated["relife"]["ndcg@5"].mean(0) - simulated["relife-no-cpe"]["ndcg@5"].mean(0)
        if gains.size >= 2 and gap > 0:
            per_seed = seed_interval(gains / gap, np.zeros_like(gains), what="one training run each, the oracles fixed")
            words = f"hull of a {words} and a {per_seed.evidence} [{per_seed.lo:+.3f}, {per_seed.hi:+.3f}]"
            interval = Interval(min(boot.lo, per_seed.lo), max(boot.hi, per_seed.hi), boot.estimate, words, boot.units, seeds)
        result.claim("sim_cpe_headroom_share", "The comparison extractor's NDCG@5 gain (RELIFE minus RELIFE without it) "
                     "is a positive share of the simulator's comparison headroom (the oracle that knows beta_u minus "
                     "sorting by r); null: a share of 0", share(cols.mean(0)), 0.0, "no share", better="higher",
                     interval=interval, evidence=words)
    if control and all(k in simulated and k in control for k in ("relife", "relife-no-cpe")):
        gain = simulated["relife"]["ndcg@5"] - simulated["relife-no-cpe"]["ndcg@5"]
        gain0 = control["relife"]["ndcg@5"] - control["relife-no-cpe"]["ndcg@5"]
        interval = users_and_seeds_interval(gain, gain0, users["simulated"])
        result.claim("sim_cpe_gain_needs_substitution", "The comparison extractor's NDCG@5 gain is larger on the "
                     "simulator with the substitution effect than on the same lists simulated without it (beta = 0); "
                     "null: the gain does not come from the comparison effect", float(gain.mean()), float(gain0.mean()),
                     "the gain at beta = 0", better="higher", interval=interval, evidence=interval.evidence)


def reproduce(profile: str, seed: int, out: Path, seeds: int | None = None, models: tuple[str, ...] | None = None) -> Result:
    """Simulated (per-user substitution) and logged-label comparisons of RELIFE, its ablations and the baselines."""
    from tenfold.core.progress import say
    from tenfold.data.lists import (
        build_logged_lists,
        build_simulated_lists,
        fit_ground_truth,
        fit_initial_ranker,
    )
    from tenfold.data.movielens import load_atomic
    from tenfold.relife.metrics import evaluation_uniforms
    from tenfold.relife.train import ABLATIONS

    p = _profile(profile)
    n_seeds = seeds or p.seeds
    seed_list = [seed + i for i in range(n_seeds)]
    sim_models = models or ("initial", *BASELINE_NAMES, "relife", *ABLATIONS)
    logged_models = tuple(m for m in sim_models if m not in ABLATIONS)
    lists_cfg, sim_cfg, train_cfg = _settings(p, seed)
    out = Path(out)
    with torch_threads(p.threads):
        seed_everything(seed)
        data = load_atomic("ml-100k")
        say("relife: simulated lists (per-user substitution)")
        truth = fit_ground_truth(data, lists_cfg)
        sim = build_simulated_lists(data, lists_cfg, sim_cfg, truth=truth)
        overlap = {"simulated": disjoint_splits(sim, "simulated")}
        uniforms = evaluation_uniforms(sim.test.mask.shape, p.draws, seed + 1000)
        simulated, sim_record = run_regime(sim, sim_models, p, seed_list, p.signal, uniforms)
        simulated.update({k: {m: v[:, None] for m, v in table.items()} for k, table in oracle_metrics(sim, uniforms).items()})
        control, control_record, same_lists = {}, {}, None
        control_models = tuple(m for m in ("relife", "relife-no-cpe") if m in sim_models)
        if len(control_models) == 2 and p.beta > 0:
            say("relife: control, the same lists simulated without substitution (beta = 0)")
            sim0 = build_simulated_lists(data, lists_cfg, replace(sim_cfg, beta=0.0), truth=truth)
            same_lists = bool(np.array_equal(sim0.test.items, sim.test.items) and np.array_equal(sim0.test.user, sim.test.user))
            if not same_lists:
                raise RuntimeError("the beta = 0 control must score the same test lists as the main simulation")
            control, control_record = run_regime(sim0, control_models, p, seed_list, p.signal, uniforms)
        say("relife: logged ML-100K lists")
        logged_splits = build_logged_lists(data, lists_cfg, ranker=fit_initial_ranker(data, lists_cfg))
        overlap["logged"] = disjoint_splits(logged_splits, "logged")
        logged, logged_record = run_regime(logged_splits, logged_models, p, seed_list, "labels", None)
    metrics = {"simulated": summarise(simulated, sim_record), "logged": summarise(logged, logged_record),
               "data": {"simulated": {k: sim.info[k] for k in ("train_lists", "val_lists", "test_lists", "click_rate",
                                                               "mean_intent", "mean_relevance")},
                        "logged": {k: logged_splits.info[k] for k in ("train_lists", "val_lists", "test_lists")}},
               "overlap": overlap}
    metrics["headroom"] = headroom(metrics["simulated"])
    if control:
        metrics["control_beta0"] = {**summarise(control, control_record), "same_test_lists": same_lists}
        metrics["headroom"]["cpe_gain_at_beta0"] = (metrics["control_beta0"]["relife"]["ndcg@5"]
                                                    - metrics["control_beta0"]["relife-no-cpe"]["ndcg@5"])
    result = Result(method="relife", kind="reproduce", paper=PAPER, profile=profile, seed=seed, seeds=seed_list,
                    metrics=metrics,
                    config={"profile": asdict(p), "lists": asdict(lists_cfg), "simulator": sim_cfg.record(),
                            "train": {**asdict(train_cfg), "seed": "one per seed"}, "models": list(sim_models),
                            "signal": {"simulated": f"{p.signal} (the simulator's intent probability r' of each displayed item)",
                                       "logged": "labels (ratings >= 4; no display positions, propensity 1)"},
                            "contrastive": "user (reading a)", "cl_weight": 0.01, "cl_temperature": 0.2,
                            "eval_uniforms_seed": seed + 1000, "draws": p.draws,
                            "initial_ranker": {"simulated": f"logit r + a per-(user, genre) error N(0, {p.taste_noise}^2) "
                                                            f"+ N(0, {p.ranker_noise}^2)",
                                               "logged": "matrix factorisation on each user's earliest 30% of lists"},
                            "ground_truth": f"matrix factorisation on all ML-100K ratings, frozen; r = sigmoid({sim_cfg.truth_sharpness} * logit)"})
    add_claims(result, simulated, logged, n_seeds, control,
               users={"simulated": sim.test.user, "logged": logged_splits.test.user})
    result.notes += [
        "RELIFE's module equations are a reconstruction (the paper's full text was not readable offline); see docs/relife.md.",
        "Simulated regime: synthetic clicks and intents from an MF ground truth fit on ML-100K, PBM/cascade position bias "
        "and a same-genre substitution effect whose strength beta_u is a per-user trait; models train on the intent "
        "labels of the displayed lists and are scored by showing their re-ranked lists to the simulator.",
        "Logged regime: lists are consecutive MovieLens-100K ratings (pseudo-exposures); metrics assume labels do not "
        "depend on the displayed position.",
        f"Seeds {seed_list} vary model initialisation and batch order; the lists (and the simulator's draws) are the same "
        "for every seed. Each interval is the hull of a paired bootstrap over users (each drawn user brings all of "
        "its test lists, which share its traits; per-list values averaged over seeds) and a paired t interval over "
        "the seeds, so a verdict holds only beyond both the test-set and the training noise.",
        "Control: RELIFE and RELIFE without the comparison extractor are also trained on the same lists simulated "
        "with beta = 0 (no substitution), to check that the extractor's gain comes from the comparison effect.",
    ]
    result.artifacts.append(_plot(metrics, out))
    return result


def headroom(sim_summary: dict) -> dict:
    """NDCG@5 differences that split the simulator's headroom: the personal part, knowing beta_u (oracle
    with beta_u minus oracle with the mean beta), what the user's history can tell of it (Bayes posterior),
    the population-level substitution (mean-beta oracle minus sorting by r), their sum (the comparison
    headroom), and what RELIFE's modules recover of them."""
    ndcg = {k: v["ndcg@5"] for k, v in sim_summary.items()}
    if not all(k in ndcg for k in ORACLES):
        return {}
    personal = ndcg["oracle-beta"] - ndcg["oracle-mean"]
    comparison = ndcg["oracle-beta"] - ndcg["oracle-sort"]
    out = {"oracle_beta_minus_mean": personal, "oracle_history_minus_mean": ndcg["oracle-history"] - ndcg["oracle-mean"],
           "oracle_mean_minus_sort": ndcg["oracle-mean"] - ndcg["oracle-sort"], "oracle_beta_minus_sort": comparison}
    for name, key in (("relife-no-cpe", "cpe_gain"), ("relife-no-history", "history_gain")):
        if "relife" in ndcg and name in ndcg:
            out[key] = ndcg["relife"] - ndcg[name]
            if personal > 0:
                out[f"{key}_over_personal_headroom"] = out[key] / personal
            if comparison > 0:
                out[f"{key}_over_comparison_headroom"] = out[key] / comparison
    return out


def _plot(metrics: dict, out: Path) -> str:
    from tenfold.core.plots import plt, save_figure

    panels = [("simulator (intent labels)", metrics["simulated"]), ("logged ML-100K labels", metrics["logged"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (title, table) in zip(axes, panels, strict=True):
        names = list(table)
        vals = [table[m]["ndcg@5"] for m in names]
        colors = ["tab:red" if m == "relife" else "tab:orange" if m.startswith("relife") else
                  "tab:green" if m.startswith("oracle") else "tab:gray" for m in names]
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        lo, hi = min(vals), max(vals)
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-3), hi + 0.1 * (hi - lo + 1e-3))
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("NDCG@5")
    fig.suptitle("RELIFE, its ablations, the baselines and the simulator's oracles (mean over test lists and seeds)",
                 fontsize=10)
    return save_figure(fig, out / "relife_ndcg5.png")


def bench(profile: str, seed: int, out: Path) -> Result:
    """Training throughput (lists/s) and per-list inference latency of RELIFE vs PRM, as ratios."""
    import torch

    from tenfold.data.lists import build_simulated_lists, fit_ground_truth
    from tenfold.data.movielens import load_atomic
    from tenfold.relife.train import build_model, fit

    p = _profile(profile)
    lists_cfg, sim_cfg, train_cfg = _settings(p, seed)
    lists_cfg = replace(lists_cfg, max_users=lists_cfg.max_users or 300)
    table = {}
    with torch_threads(p.threads):
        seed_everything(seed)
        data = load_atomic("ml-100k")
        sim = build_simulated_lists(data, lists_cfg, sim_cfg, truth=fit_ground_truth(data, lists_cfg))
        n_latency = min(100, len(sim.test))
        for name in ("relife", "prm"):
            seed_everything(seed)
            model = build_model(name, sim.train.meta, lists_cfg.list_len, p.history_lists, dim=p.dim)
            with Timer() as t:
                fit(model, sim.train, sim.val, replace(train_cfg, max_epochs=1), p.signal)
            model.eval()
            with torch.no_grad(), Timer() as lat:
                for i in range(n_latency):
                    model(sim.test.batch(np.array([i])))
            table[name] = {"train_lists_per_s": len(sim.train) / t.seconds,
                           "latency_ms_per_list": 1000 * lat.seconds / n_latency,
                           "parameters": sum(q.numel() for q in model.parameters())}
    table["ratio_relife_over_prm"] = {
        "train_throughput": table["relife"]["train_lists_per_s"] / table["prm"]["train_lists_per_s"],
        "latency": table["relife"]["latency_ms_per_list"] / table["prm"]["latency_ms_per_list"]}
    result = Result(method="relife", kind="bench", paper=PAPER, profile=profile, seed=seed, metrics=table,
                    config={"profile": asdict(p), "lists": asdict(lists_cfg), "train_lists": len(sim.train),
                            "latency_lists": n_latency, "latency_batch": 1})
    result.notes.append("Timings on a shared CPU; compare the ratios, not the absolute numbers. PRM's count excludes "
                        "the pre-training of its personal vector.")
    return result


register(MethodSpec(name="relife", title=TITLE, arxiv=ARXIV, reproduce=reproduce, bench=bench,
                    summary="Re-ranking with list-level hybrid (clicked and unclicked) feedback: disentangled "
                            "interests, sequential preference mixing and within-list comparison patterns."))
