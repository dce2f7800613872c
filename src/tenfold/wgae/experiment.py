"""reproduce: link prediction and topic quality on a real document network (the Python docs) and a
non-GPGBN synthetic one (DC-SBM links, LDA words), every model with the same Adam-step budget and
its embedding size chosen on validation, over several seeds; bench: WGCAE epoch cost and peak
memory, full-graph vs subgraph decoding, as the graph grows."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from tenfold.core.errors import InputError
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result

PAPER = {"title": "Scalable Weibull Graph Attention Autoencoder for Modeling Document Networks "
                  "(GPFA / GPGBN / WGAE)", "arxiv": "2410.09696"}
LINK_MODELS = ("gae", "vgae", "wgcae", "wgaae")  # all that reproduce knows; a profile runs its `models`
TOPIC_MODELS = ("wgcae", "wgaae")
OURS = ("wgcae", "wgaae")

# Every model gets `steps` Adam steps at lr 0.01 with hidden width `hidden`; its embedding size is
# chosen from `grid` on the first seed's validation AUC (WGAE: K_1 topics with K_2 = K_1 / 4 above).
PROFILES = {
    "smoke": {"datasets": {"dcsbm": {"nodes": 120, "words": 80, "blocks": 3, "topics": 6, "doc_length": 40.0,
                                     "degree": 8.0}},
              "models": ("vgae", "wgcae", "wgaae"), "seeds": 2, "steps": 20, "steps_per_epoch": 5, "samples": 2,
              "hidden": 16, "grid": (8,), "lda_iter": 5, "eval_every": 1},
    "quick": {"datasets": {"python-docs": {"level": "page", "vocab_size": 500},
                           "dcsbm": {"nodes": 300, "words": 300, "blocks": 6, "topics": 12, "doc_length": 60.0,
                                     "degree": 10.0}},
              "models": ("vgae", "wgcae", "wgaae"), "seeds": 3, "steps": 80, "steps_per_epoch": 5, "samples": 2,
              "hidden": 64, "grid": (16, 32), "lda_iter": 15, "eval_every": 2},
    "full": {"datasets": {"python-docs": {"level": "section", "vocab_size": 2000},
                          "dcsbm": {"nodes": 2000, "words": 1000, "blocks": 10, "topics": 30, "doc_length": 80.0,
                                    "degree": 10.0}},
             "models": LINK_MODELS, "seeds": 5, "steps": 1500, "steps_per_epoch": 5, "samples": 10, "hidden": 128,
             "grid": (16, 32, 64), "lda_iter": 100, "eval_every": 5},
}
BENCH_SIZES = {"smoke": (200,), "quick": (1_000, 10_000), "full": (1_000, 10_000, 100_000)}
ETA = 0.01  # Dirichlet prior of the learned topics; chance topics are drawn from it


def _profile(profile: str) -> dict:
    if profile not in PROFILES:
        raise InputError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    return PROFILES[profile]


def load_dataset(name: str, spec: dict, seed: int):
    """The named network of a profile (the real one read from the installed docs, the generator seeded)."""
    from tenfold.data.docgraph import DocGraphConfig, load_python_docs_graph, sample_dcsbm_lda

    if name == "python-docs":
        return load_python_docs_graph(DocGraphConfig(**spec))
    return sample_dcsbm_lda(spec["nodes"], spec["words"], spec["blocks"], spec["topics"], spec["doc_length"],
                            spec["degree"], seed=seed)


def _wgae_config(p: dict, size: int, encoder: str):
    from tenfold.wgae.model import WGAEConfig

    return WGAEConfig(encoder=encoder, topics=(size, max(1, size // 4)), hidden=p["hidden"], heads=4,
                      epochs=p["steps"] // p["steps_per_epoch"], steps_per_epoch=p["steps_per_epoch"],
                      samples=p["samples"], decoder="exact", eval_every=p["eval_every"])


def _untrained_phi(net, p: dict, size: int, name: str, seed: int) -> np.ndarray:
    """Layer-1 topics of the WGAE `fit_model` would start from (before any step)."""
    from tenfold.wgae.model import WGAE

    return WGAE(net.n_words, _wgae_config(p, size, "gcn" if name == "wgcae" else "gat"), seed).phi[0].double().numpy()


def fit_model(name: str, net, split, size: int, p: dict, seed: int):
    """One model, one size, one seed: a LinkModel and the CPU seconds it took."""
    from tenfold.wgae.baselines import fit_autoencoder
    from tenfold.wgae.model import fit_wgae

    start = time.process_time()
    if name in ("gae", "vgae"):
        m = fit_autoencoder(name, net, split, seed, steps=p["steps"], hidden=p["hidden"], out=size,
                            eval_every=p["eval_every"] * p["steps_per_epoch"])
    else:
        m = fit_wgae(net, split, _wgae_config(p, size, "gcn" if name == "wgcae" else "gat"), seed)
    return m, time.process_time() - start


def run_dataset(name: str, net, p: dict, seeds: list[int]) -> dict:
    """Tune each model's size on the first seed's validation split, then fit every seed; test numbers per seed."""
    from tenfold.wgae.baselines import fit_lda
    from tenfold.wgae.evaluate import (
        auc_ap,
        npmi_coherence,
        random_topic_match,
        split_links,
        split_overlap,
        top_words,
        topic_match,
        unigram_topic_match,
    )

    per_seed: dict = {}
    tuning: dict = {m: {} for m in p["models"]}
    selected: dict = {}
    checks: dict = {}
    topics: dict = {}
    for s_i, seed in enumerate(seeds):
        split = split_links(net, 0.05, 0.10, seed)
        checks[seed] = split_overlap(net, split)
        if any(checks[seed].values()):
            raise RuntimeError(f"{name} seed {seed}: the link split overlaps: {checks[seed]}")
        row: dict = {}
        fitted = {}
        for model in p["models"]:
            if s_i == 0:  # the first seed's fits at every size are the tuning runs
                runs = {size: fit_model(model, net, split, size, p, seed) for size in p["grid"]}
                tuning[model] = {size: {"val_auc": r[0].val_auc, "cpu_seconds": r[1]} for size, r in runs.items()}
                selected[model] = max(runs, key=lambda size: runs[size][0].val_auc)
                m, cpu = runs[selected[model]]
            else:
                m, cpu = fit_model(model, net, split, selected[model], p, seed)
            auc, ap = auc_ap(m.score(split.test_pos), m.score(split.test_neg))
            # the model kept, as Adam steps taken (WGAE's best_epoch counts epochs of steps_per_epoch steps)
            kept = (m.best_epoch + 1) * (p["steps_per_epoch"] if model in OURS else 1)
            row[model] = {"auc": auc, "ap": ap, "val_auc": m.val_auc, "steps_at_best": kept, "cpu_seconds": cpu}
            fitted[model] = m
        lda_cache: dict = {}
        for model in TOPIC_MODELS:
            k = selected[model]
            if k not in lda_cache:
                lda_cache[k] = fit_lda(net, k, seed, p["lda_iter"])
            phi, lda = fitted[model].extra["phi"][0], lda_cache[k]
            if net.synthetic:
                true = net.truth["phi"][0]
                row[model]["topic_match"] = topic_match(phi, true)
                row[model]["topic_match_lda"] = topic_match(lda, true)
                # trivial topic sets, the claim's reference is the best of them: random draws from the
                # prior, WGAE's own initial (untrained) topics, every topic = the corpus word frequencies
                row[model]["topic_match_chance"] = random_topic_match(true, k, ETA, seed)
                row[model]["topic_match_untrained"] = topic_match(_untrained_phi(net, p, k, model, seed), true)
                row[model]["topic_match_unigram"] = unigram_topic_match(net, true)
                row[model]["topic_match_trivial"] = max(row[model][f"topic_match_{key}"]
                                                        for key in ("chance", "untrained", "unigram"))
            else:
                row[model]["npmi"] = float(npmi_coherence(phi, net).mean())
                row[model]["npmi_lda"] = float(npmi_coherence(lda, net).mean())
            if s_i == 0 and net.vocab is not None:
                topics[model] = [[net.vocab[w] for w in ws] for ws in top_words(phi, 8)]
                topics[f"lda (K={k})"] = [[net.vocab[w] for w in ws] for ws in top_words(lda, 8)]
        per_seed[seed] = row
    mean = {m: {key: float(np.mean([per_seed[s][m][key] for s in seeds])) for key in per_seed[seeds[0]][m]}
            for m in p["models"]}
    stats = {"nodes": net.n_nodes, "links": net.n_edges, "words": net.n_words, "tokens": int(net.vals.sum()),
             "synthetic": net.synthetic}
    return {"per_seed": per_seed, "mean": mean, "tuning": tuning, "selected": selected, "split_overlap": checks,
            "data": stats, "models": list(p["models"]), "top_words": topics}


def add_claims(result: Result, name: str, run: dict, seeds: list[int]) -> None:
    """The claims of one dataset, each a paired t interval over seeds (one split and one fit per seed)."""
    from tenfold.core.stats import seed_interval

    def per(model: str, key: str) -> list[float]:
        return [run["per_seed"][s][model][key] for s in seeds]

    kind = "synthetic DC-SBM + LDA" if run["data"]["synthetic"] else "real python-docs"
    for model in OURS:
        ours, ref = per(model, "auc"), per("vgae", "auc")
        result.claim(f"{model}_auc_above_vgae_{name}",
                     f"{model.upper()} test link AUC above VGAE's on {name} ({kind}); null: no difference, both "
                     "with the same Adam steps and a validation-chosen size",
                     np.mean(ours), np.mean(ref), "VGAE", better="higher",
                     interval=seed_interval(ours, ref, what=f"test AUC, a split per seed, {name}"))
    for model in TOPIC_MODELS:
        if run["data"]["synthetic"]:
            ours, lda, trivial = per(model, "topic_match"), per(model, "topic_match_lda"), per(model, "topic_match_trivial")
            result.claim(f"{model}_topic_match_above_lda_{name}",
                         f"{model.upper()} layer-1 topics match the true topics better than LDA's (same K, words "
                         f"only) on {name}; null: no difference", np.mean(ours), np.mean(lda), "LDA", better="higher",
                         interval=seed_interval(ours, lda, what=f"mean best cosine, {name}"))
            result.claim(f"{model}_topic_match_above_trivial_{name}",
                         f"{model.upper()} topics match the true topics better than the best trivial topic set on "
                         f"{name}; null: the best of Dir({ETA}) prior draws, {model.upper()}'s own untrained "
                         "initial topics, and every topic = the corpus word frequencies", np.mean(ours),
                         np.mean(trivial), "best trivial topics", better="higher",
                         interval=seed_interval(ours, trivial, what=f"mean best cosine, {name}"))
        else:
            ours, lda = per(model, "npmi"), per(model, "npmi_lda")
            result.claim(f"{model}_npmi_above_lda_{name}",
                         f"{model.upper()} topics more coherent (NPMI of the top 10 words over the corpus) than "
                         f"LDA's with the same K (words only) on {name}; null: no difference",
                         np.mean(ours), np.mean(lda), "LDA (scikit-learn)", better="higher",
                         interval=seed_interval(ours, lda, what=f"mean NPMI over topics, {name}"))


def reproduce(profile: str = "quick", seed: int = 0, out: Path | None = None, seeds: int | None = None) -> Result:
    from tenfold.core.io import atomic_write_json
    from tenfold.core.runtime import seed_everything, torch_threads
    from tenfold.data.docgraph import python_doc_roots

    p = _profile(profile)
    out = Path(out) if out is not None else Path("reports/wgae")
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    seed_list = list(range(seed, seed + (seeds or p["seeds"])))
    if len(seed_list) < 2:
        raise InputError("wgae reproduce needs at least 2 seeds: its intervals are over seeds")
    runs, notes = {}, []
    for name, spec in p["datasets"].items():
        if name == "python-docs" and not python_doc_roots():
            notes.append("python-docs skipped: the Python HTML docs are not installed (apt-get install python3-doc)")
            continue
        net = load_dataset(name, spec, seed)
        with torch_threads(1):  # small sparse ops: one thread avoids OpenMP spin on a shared CPU
            runs[name] = run_dataset(name, net, p, seed_list)
    result = Result(method="wgae", kind="reproduce", paper=PAPER, profile=profile, seed=seed, seeds=seed_list,
                    config={"datasets": p["datasets"], "split": {"val": 0.05, "test": 0.10, "selection": "validation AUC"},
                            "budget": {"adam_steps": p["steps"], "lr": 0.01, "hidden": p["hidden"],
                                       "size_grid": list(p["grid"]), "eval_every_steps": p["eval_every"]
                                       * p["steps_per_epoch"]},
                            "wgae": asdict(_wgae_config(p, p["grid"][0], "gcn")) | {"topics": "(K, K // 4), K from the grid"},
                            "lda": {"max_iter": p["lda_iter"], "learning_method": "batch"}, "torch_threads": 1},
                    metrics={name: {k: v for k, v in run.items() if k != "top_words"} for name, run in runs.items()})
    for name, run in runs.items():
        add_claims(result, name, run, seed_list)
    atomic_write_json(out / "details.json", {name: {"top_words": run["top_words"]} for name, run in runs.items()})
    result.artifacts = ["details.json", *_plots(out, runs, seed_list)]
    result.notes = notes + [
        "python-docs is real (Debian python3-doc HTML, pages as nodes, hyperlinks as links); dcsbm is synthetic "
        "(degree-corrected SBM links, LDA words: not the GPGBN model, so no model has its generator for free).",
        f"every model: {p['steps']} Adam steps (WGAE: plus one TLASGR Phi update every {p['steps_per_epoch']} steps), "
        f"lr 0.01, hidden {p['hidden']}, embedding size chosen on the first seed's validation AUC from {list(p['grid'])}; "
        "the step kept is the best on validation.",
        "seeds vary the link split and the initialisation; intervals are paired t intervals over seeds.",
        "the authors' released code copies the graph before mask_test_edges, so its attention mask and subgraph "
        "labels see test links: published AUCs are optimistic; here the encoders see training links only.",
    ]
    return result


def _plots(out: Path, runs: dict, seeds: list[int]) -> list[str]:
    from tenfold.core.plots import plt, save_figure

    if not runs:
        return []
    fig, axes = plt.subplots(1, len(runs) + 1, figsize=(5 * (len(runs) + 1), 3.6))
    for ax, (name, run) in zip(axes, runs.items(), strict=False):
        for i, model in enumerate(run["models"]):
            vals = [run["per_seed"][s][model]["auc"] for s in seeds]
            ax.scatter([i] * len(vals), vals, color=f"C{i}", s=14)
            ax.bar(i, np.mean(vals), 0.6, color=f"C{i}", alpha=0.4)
        ax.set_xticks(range(len(run["models"])), run["models"])
        lo = min(run["per_seed"][s][m]["auc"] for s in seeds for m in run["models"])
        ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.set_title(f"test link AUC, {name} ({len(seeds)} seeds)")
    ax = axes[-1]
    labels, ours, refs = [], [], []
    for name, run in runs.items():
        key = "topic_match" if run["data"]["synthetic"] else "npmi"
        for model in TOPIC_MODELS:
            labels.append(f"{model}\n{name}")
            ours.append(np.mean([run["per_seed"][s][model][key] for s in seeds]))
            refs.append(np.mean([run["per_seed"][s][model][f"{key}_lda"] for s in seeds]))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, ours, 0.4, label="WGAE")
    ax.bar(x + 0.2, refs, 0.4, label="LDA, same K")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_title("topics: NPMI (docs) / match (dcsbm)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, out / "wgae_scores.png")
    return ["wgae_scores.png"]


def bench_one(n_nodes: int, decoder: str, seed: int = 0, epochs: int = 3, subgraph_nodes: int = 500) -> dict:
    """One WGCAE timing in this process: seconds per epoch (1 Adam step + 1 Phi update), peak RSS."""
    import resource

    import torch

    from tenfold.wgae.gpgbn import sample
    from tenfold.wgae.model import WGAEConfig, train_wgae

    torch.set_num_threads(1)
    net = sample(n_nodes, 200, (16, 4), 40.0, 8.0, seed=seed)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cfg = WGAEConfig(topics=(16, 4), epochs=1, steps_per_epoch=1, samples=1, decoder=decoder,
                     subgraph_nodes=subgraph_nodes)
    train_wgae(net, cfg, seed)  # warm-up
    t = time.perf_counter()
    train_wgae(net, replace(cfg, epochs=epochs), seed)
    seconds = (time.perf_counter() - t) / epochs
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"nodes": n_nodes, "links": net.n_edges, "decoder": decoder, "epoch_seconds": seconds,
            "peak_rss_mb": peak, "rss_before_training_mb": before}


def _bench_child(args):
    return bench_one(*args)


def bench(profile: str = "quick", seed: int = 0, out: Path | None = None) -> Result:
    import multiprocessing as mp

    from tenfold.wgae.model import DENSE_LIMIT

    if profile not in BENCH_SIZES:
        raise InputError(f"profile must be one of {sorted(BENCH_SIZES)}, got {profile!r}")
    out = Path(out) if out is not None else Path("reports/bench/wgae")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    ctx = mp.get_context("spawn")
    for n in BENCH_SIZES[profile]:
        for decoder in ("dense", "subgraph", "exact"):
            if decoder == "dense" and n > min(DENSE_LIMIT, 10_000):
                rows.append({"nodes": n, "decoder": decoder, "epoch_seconds": None, "peak_rss_mb": None,
                             "skipped": f"dense {n} x {n} decoder needs ~{6 * 4 * n * n / 2**30:.0f} GiB"})
                continue
            with ctx.Pool(1) as pool:  # a fresh process per cell: its peak RSS is this cell's alone
                rows.append(pool.apply(_bench_child, ((n, decoder, seed),)))
    result = Result(method="wgae", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={"sizes": list(BENCH_SIZES[profile]), "words": 200, "topics": [16, 4], "mean_degree": 8,
                            "subgraph_nodes": 500, "epoch": "1 Adam step + 1 TLASGR Phi update", "threads": 1},
                    metrics={"rows": rows})
    result.notes = ["synthetic data sampled from GPGBN; one process per cell; peak RSS includes the Python/torch "
                    "runtime and the sampled data.",
                    "quick profile measures 1k and 10k nodes (fits ~3 minutes on 2 cores); 100k is in `full`."]
    result.artifacts = _bench_plot(out, rows)
    return result


def _bench_plot(out: Path, rows: list[dict]) -> list[str]:
    from tenfold.core.plots import plt, save_figure

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for decoder in ("dense", "subgraph", "exact"):
        pts = [(r["nodes"], r["epoch_seconds"], r["peak_rss_mb"]) for r in rows
               if r["decoder"] == decoder and r.get("epoch_seconds") is not None]
        if pts:
            n, s, m = zip(*pts, strict=True)
            ax[0].loglog(n, s, "o-", label=decoder)
            ax[1].loglog(n, m, "o-", label=decoder)
    ax[0].set_xlabel("nodes")
    ax[0].set_ylabel("seconds per epoch")
    ax[1].set_xlabel("nodes")
    ax[1].set_ylabel("peak RSS (MiB)")
    ax[0].legend()
    fig.tight_layout()
    save_figure(fig, out / "wgae_bench.png")
    return ["wgae_bench.png"]


register(MethodSpec(name="wgae", title=PAPER["title"], arxiv=PAPER["arxiv"], reproduce=reproduce, bench=bench,
                    summary="GPFA/GPGBN relational topic model (Gibbs) and Weibull graph auto-encoders WGCAE/WGAAE "
                            "on document networks: link prediction and topic quality on the Python docs and a "
                            "DC-SBM+LDA generator."))
