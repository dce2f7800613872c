"""`reproduce` and `bench` for MIND on generated (synthetic) WhoIsWho-format data."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from tenfold.core.errors import InputError
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result
from tenfold.core.runtime import Timer, seed_everything

PAPER = {"title": "MIND: Effective Incorrect Assignment Detection through a Multi-Modal Structure-Enhanced "
                  "Language Model", "arxiv": "2412.03930"}
SYNTHETIC = ("synthetic data: authors, papers and outliers come from tenfold's seeded WhoIsWho-format generator "
             "(tenfold.data.whoiswho.generate_ind); the numbers are not comparable with the KDD Cup leaderboard")


@dataclass(frozen=True)
class Profile:
    n_train: int
    n_valid: int
    lm: str
    steps: tuple[int, int, int]
    lrs: tuple[float, float, float]
    gccad_epochs: int
    gcn_epochs: int
    max_profile: int
    repeats: int
    papers: tuple[int, int] = (16, 36)
    graphs_per_step: int = 8


PROFILES = {
    # CPU, ~3 min on 2 idle cores: small LM steps with larger learning rates than the paper's GPU recipe
    "quick": Profile(40, 16, "tiny-lm", (60, 60, 60), (5e-3, 3e-3, 3e-3), 40, 30, 20, 2),
    # GPU / a long night: the paper's learning rates, more authors and steps
    "full": Profile(400, 100, "tiny-lm", (600, 600, 200), (1e-4, 5e-5, 5e-5), 50, 50, 300, 4, (16, 36), 1),
    # seconds: for tests only
    "tiny": Profile(6, 3, "tiny-lm", (2, 2, 2), (1e-3, 1e-3, 1e-3), 1, 1, 6, 1, (8, 12)),
}


def _profile(profile: str) -> Profile:
    if profile not in PROFILES:
        raise InputError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return PROFILES[profile]


def detector_config(p: Profile, lm: str | None = None):
    from tenfold.ind.gccad import GCCADConfig
    from tenfold.ind.model import MindConfig, StageConfig
    from tenfold.ind.pipeline import DetectorConfig

    stages = tuple(StageConfig(s, lr, "cosine" if i == 0 else "constant") for i, (s, lr) in enumerate(zip(p.steps, p.lrs, strict=True)))
    gccad = GCCADConfig(epochs=p.gccad_epochs, lr=5e-3, graphs_per_step=p.graphs_per_step)
    return DetectorConfig(lm=lm or p.lm, gccad=gccad,
                          mind=MindConfig(max_profile=p.max_profile, max_length=4096, repeats=p.repeats, stages=stages))


def _data(p: Profile, seed: int, folder: Path):
    from tenfold.data.whoiswho import GeneratorConfig, generate_ind, load_ind

    stats = generate_ind(folder, seed, GeneratorConfig(n_train=p.n_train, n_valid=p.n_valid,
                                                                min_papers=p.papers[0], max_papers=p.papers[1]))
    return load_ind(folder), stats


def _plot(metrics: dict, history: dict, out: Path) -> list[str]:
    from tenfold.core.plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(metrics)
    x = range(len(names))
    axes[0].bar([i - 0.2 for i in x], [metrics[n]["wauc"] for n in names], 0.4, label="weighted AUC")
    axes[0].bar([i + 0.2 for i in x], [metrics[n]["wmap"] for n in names], 0.4, label="weighted MAP")
    axes[0].set_xticks(list(x), names)
    axes[0].set_ylim(0, 1)
    axes[0].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[0].set_title("held-out authors (synthetic data)")
    axes[0].legend(loc="lower right", fontsize=8)
    for k in (1, 2, 3):
        losses = history.get(f"stage{k}", [])
        axes[1].plot(range(len(losses)), losses, label=f"stage {k}")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("label-slot loss")
    axes[1].set_title("MIND training stages")
    axes[1].legend(fontsize=8)
    return [save_figure(fig, out / "ind_scores.png")]


def reproduce(profile: str, seed: int, out: Path, lm: str | None = None) -> Result:
    from tenfold.ind.baselines import FeatureClassifier, train_gcn
    from tenfold.ind.metrics import weighted_auc_map
    from tenfold.ind.pipeline import build_graphs, fit_detector

    p = _profile(profile)
    seed_everything(seed)
    out = Path(out)
    data, stats = _data(p, seed, out / "data")
    cfg = detector_config(p, lm)
    valid = data.split("valid")
    labels = {a.aid: a.labels for a in valid.values()}
    metrics, stage_scores = {}, {}

    def on_stage(stage: int, det) -> None:
        stage_scores[stage] = weighted_auc_map(labels, det.score(data, valid, stage)).as_dict()

    with Timer() as t_mind:
        det = fit_detector(data, out / "detector", cfg, seed, on_stage=on_stage)
    train_graphs = build_graphs(data, data.train, det.enc)
    valid_graphs = build_graphs(data, valid, det.enc)

    lr = FeatureClassifier("lr", seed).fit(train_graphs)
    metrics["lr"] = weighted_auc_map(labels, {g.aid: dict(zip(g.pids, lr.scores(g), strict=True)) for g in valid_graphs}).as_dict()
    if FeatureClassifier.lightgbm_available():
        gb = FeatureClassifier("lgbm", seed).fit(train_graphs)
        metrics["lgbm"] = weighted_auc_map(labels, {g.aid: dict(zip(g.pids, gb.scores(g), strict=True)) for g in valid_graphs}).as_dict()
    gcn = train_gcn(train_graphs, hidden=cfg.gccad.hidden, epochs=p.gcn_epochs, seed=seed)
    metrics["gcn"] = weighted_auc_map(labels, {g.aid: dict(zip(g.pids, gcn.scores(g), strict=True)) for g in valid_graphs}).as_dict()
    metrics["gccad"] = weighted_auc_map(labels, det.gccad_scores(data, valid)).as_dict()
    metrics["mind-text"] = stage_scores[1]
    metrics["mind"] = stage_scores[3]

    result = Result(method="ind", kind="reproduce", paper=PAPER, profile=profile, seed=seed,
                    config={"profile": p.__dict__, "detector": cfg.to_dict(), "data": stats,
                            "lm_parameters": sum(x.numel() for x in det.mind.lm.parameters()),
                            "mind_train_seconds": round(t_mind.seconds, 1), "mind_stage2": stage_scores[2]},
                    metrics=metrics)
    result.claim("mind_beats_gccad", "MIND (all stages) has a higher weighted AUC than GCCAD alone",
                 metrics["mind"]["wauc"], metrics["gccad"]["wauc"], "GCCAD", better="higher")
    result.claim("mind_beats_lr", "MIND (all stages) has a higher weighted AUC than hand-made features + LR",
                 metrics["mind"]["wauc"], metrics["lr"]["wauc"], "features+LR", better="higher")
    result.claim("graph_modality_helps", "adding the graph modality (stage 3) raises weighted AUC over stages 1-2",
                 stage_scores[3]["wauc"], stage_scores[2]["wauc"], "MIND after stage 2", better="higher")
    result.notes += [SYNTHETIC,
                     f"LM: {cfg.lm} ({result.config['lm_parameters']:,} parameters incl. LoRA), "
                     f"{p.steps} steps per stage on CPU; the paper uses Llama-3-8B on 8 GPUs",
                     f"weighted AUC after stage 2 (text modality, no graph): {stage_scores[2]['wauc']:.4f}"]
    result.artifacts += _plot(metrics, det.history, out)
    return result


def bench(profile: str, seed: int, out: Path, lm: str | None = None) -> Result:
    """Scoring throughput (papers/s) of GCCAD and MIND on the held-out authors, and peak memory.

    Untrained weights: throughput does not depend on what the weights are."""
    from tenfold.ind.gccad import GCCAD
    from tenfold.ind.model import STAGE_MODALITIES, Features, PromptBuilder, inference_packs, score_packs
    from tenfold.ind.pipeline import Encoders, _new_mind, build_graphs, graph_features, text_features

    p = _profile(profile)
    seed_everything(seed)
    out = Path(out)
    data, stats = _data(p, seed, out / "data")
    cfg = replace(detector_config(p, lm), crossfit=0)
    valid = data.split("valid")
    n_papers = sum(len(a.papers) for a in valid.values())
    enc = Encoders.fit(cfg, data, seed)
    graphs = build_graphs(data, valid, enc)
    gccad = GCCAD(graphs[0].x.shape[1], cfg.gccad).eval()
    with Timer() as t_g, torch.no_grad():
        for g in graphs:
            gccad.scores(g)
    mind = _new_mind(cfg)
    feats = Features(text_features(data, {q for a in valid.values() for q in a.papers}, enc), graph_features(gccad, graphs))
    builder = PromptBuilder(mind.tok, {q: data.papers[q]["title"] for a in valid.values() for q in a.papers}, cfg.mind)
    packs = inference_packs(list(valid.values()), cfg.mind.packing_size, cfg.mind.max_profile)
    with Timer(sync_cuda=True) as t_m:
        score_packs(mind, packs, builder, feats, STAGE_MODALITIES[3])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    metrics = {"gccad": {"papers_per_s": n_papers / t_g.seconds},
               "mind": {"papers_per_s": n_papers / t_m.seconds, "packs": len(packs)},
               "peak_rss_mib": peak, "papers": n_papers}
    if torch.cuda.is_available():
        metrics["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    result = Result(method="ind", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={"profile": p.__dict__, "lm": cfg.lm, "packing_size": cfg.mind.packing_size,
                            "device": str(next(mind.parameters()).device), "time": time.strftime("%Y-%m-%d")},
                    metrics=metrics)
    result.notes.append(SYNTHETIC)
    return result


register(MethodSpec(name="ind", title=PAPER["title"], arxiv=PAPER["arxiv"], reproduce=reproduce, bench=bench,
                    summary="Incorrect paper-author assignment detection: GCCAD structural embeddings and text "
                            "embeddings spliced into a LoRA-tuned causal LM that answers Yes/No per paper."))
