"""The IND detector end to end: text encoders -> author graphs -> GCCAD (structural features) -> MIND's
three stages; saved to one folder (safetensors + JSON, no pickle) so `predict` reloads it.

Structural features in one basis. MIND's graph vector for (author, paper) must mean the same for the
training authors (whose vectors train the graph projector) and the held-out authors (whose vectors it
reads). A GCCAD hidden vector does not: each trained network has its own basis. So the graph vector
here is a basis-free function of GCCAD's anomaly score s_i = cos(x_i, c),

    g_i = [s_i, (s_i - mean_a s) / std_a s, rank_a(s_i) / (n_a - 1), mean_a s, std_a s]

(`structural_features`), computed by one map for every author. The score comes from `folds` GCCAD
models, each trained on the training authors outside one fold: a training author's score is from the
model that never saw it (out-of-fold, so stage 3 does not learn from over-confident in-sample
scores), a held-out author's is the mean over the fold models (the GCCAD baseline reports the same).
Ours: the official code ships the graph vectors (a 1538-d pickle) without the script that made them.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tenfold.core.errors import InputError
from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.core.progress import say
from tenfold.data.whoiswho import Author, IndData
from tenfold.ind.gccad import GCCAD, GCCADConfig, train_gccad
from tenfold.ind.graph import AuthorGraph, HFMeanPoolEncoder, TfidfSvdEncoder, author_graph, paper_string
from tenfold.ind.model import (
    STAGE_MODALITIES,
    Features,
    MindConfig,
    MindModel,
    PromptBuilder,
    StageConfig,
    balanced_packs,
    inference_packs,
    score_packs,
    train_stage,
)

STRUCTURE = ("score", "score_z", "score_rank", "author_mean", "author_std")


@dataclass(frozen=True)
class DetectorConfig:
    lm: str = "tiny-lm-long"  # a zoo name or a Hugging Face causal-LM folder
    text_encoder: str = "tfidf"  # "tfidf" or a Hugging Face encoder folder (MIND: roberta-base)
    text_dim: int = 128  # TF-IDF + SVD width
    folds: int = 2  # GCCAD models, each trained without one fold of the training authors
    gccad: GCCADConfig = GCCADConfig()
    mind: MindConfig = MindConfig()

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise InputError(f"folds must be at least 2 (training authors need out-of-fold GCCAD scores), got {self.folds}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DetectorConfig:
        mind = dict(d["mind"])
        mind["stages"] = tuple(StageConfig(**s) for s in mind["stages"])
        mind["lora_targets"] = tuple(mind["lora_targets"])
        return cls(d["lm"], d["text_encoder"], d["text_dim"], d["folds"], GCCADConfig(**d["gccad"]), MindConfig(**mind))


def _lm_folder(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if not path.exists():
        from tenfold.zoo.registry import get_model

        path = get_model(name_or_path).ensure()  # raises a clear error for an unknown name
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a Hugging Face model folder (no config.json)")
    return path


def lm_context(name_or_path: str) -> int:
    """The context the LM was trained on: the zoo report's `training_context`, else the model config's
    `max_position_embeddings` (what a Hugging Face model declares)."""
    path = _lm_folder(name_or_path)
    if (path / "zoo.json").is_file():
        return int(read_json(path / "zoo.json")["training_context"])
    cfg = read_json(path / "config.json")
    for key in ("max_position_embeddings", "seq_length", "n_positions"):
        if key in cfg:
            return int(cfg[key])
    raise InputError(f"{path}: config.json names no context length (max_position_embeddings); set max_length")


def prompt_limit(cfg: DetectorConfig) -> int:
    """max_length, checked against the LM's training context (0 = the whole context)."""
    context = lm_context(cfg.lm)
    if cfg.mind.max_length > context:
        raise InputError(f"max_length={cfg.mind.max_length} is longer than the {context} tokens {cfg.lm} was trained on; "
                         f"lower max_length (0 = the LM's context) or use an LM trained on longer text")
    return cfg.mind.max_length or context


def load_lm(name_or_path: str):
    """(model, tokenizer): a zoo model by name or any local Hugging Face causal LM folder.

    bf16 weights on CUDA under --mixed-precision bf16 (trained adapters and projectors stay float32);
    float32 otherwise."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tenfold.core.runtime import mixed_precision_setting, pick_device

    path = _lm_folder(name_or_path)
    tok = AutoTokenizer.from_pretrained(path)
    half = pick_device().type == "cuda" and mixed_precision_setting() == "bf16"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if half else torch.float32)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


@dataclass
class Encoders:
    title: object
    full: object

    @classmethod
    def fit(cls, cfg: DetectorConfig, data: IndData, seed: int) -> Encoders:
        """TF-IDF + SVD fitted on every paper's text (unsupervised; no labels are read)."""
        if cfg.text_encoder == "tfidf":
            pids = sorted(data.papers)
            titles = [paper_string(data.papers[p], "title") for p in pids]
            fulls = [paper_string(data.papers[p], "all") for p in pids]
            return cls(TfidfSvdEncoder(cfg.text_dim, seed).fit(titles), TfidfSvdEncoder(cfg.text_dim, seed).fit(fulls))
        enc = HFMeanPoolEncoder(cfg.text_encoder)
        return cls(enc, enc)

    def save(self, folder: Path) -> None:
        if isinstance(self.title, TfidfSvdEncoder):
            self.title.save(folder / "encoder_title")
            self.full.save(folder / "encoder_all")

    @classmethod
    def load(cls, cfg: DetectorConfig, folder: Path) -> Encoders:
        if cfg.text_encoder == "tfidf":
            return cls(TfidfSvdEncoder.load(folder / "encoder_title"), TfidfSvdEncoder.load(folder / "encoder_all"))
        enc = HFMeanPoolEncoder(cfg.text_encoder)
        return cls(enc, enc)


def build_graphs(data: IndData, authors: dict[str, Author], enc: Encoders) -> list[AuthorGraph]:
    graphs = []
    for a in authors.values():
        if not a.papers:
            continue
        x = enc.title.encode([paper_string(data.papers[p], "title") for p in a.papers])
        graphs.append(author_graph(a.aid, a.name, a.papers, data.papers, x, a.labels))
    return graphs


def text_features(data: IndData, pids: set[str], enc: Encoders) -> dict[str, torch.Tensor]:
    order = sorted(pids)
    z = enc.full.encode([paper_string(data.papers[p], "all") for p in order])
    return dict(zip(order, z, strict=True))


def structural_features(scores: torch.Tensor) -> torch.Tensor:
    """(n,) anomaly scores of one author's papers -> (n, 5) basis-free graph vectors (see STRUCTURE)."""
    s = scores.double()
    n = len(s)
    mean, std = s.mean(), s.std(unbiased=False)
    z = (s - mean) / std if std > 1e-12 else torch.zeros_like(s)
    ranks = torch.empty_like(s)
    ranks[s.argsort(stable=True)] = torch.arange(n, dtype=s.dtype)
    for v in s.unique():  # ties share their mean rank
        tie = s == v
        ranks[tie] = ranks[tie].mean()
    rank = ranks / (n - 1) if n > 1 else torch.full_like(s, 0.5)
    return torch.stack([s, z, rank, mean.expand(n), std.expand(n)], 1).float()


def assign_folds(aids: list[str], k: int, seed: int) -> dict[str, int]:
    """Training author -> fold (0..k-1), balanced, from a seeded shuffle."""
    order = sorted(aids)
    random.Random(seed).shuffle(order)
    return {a: i % k for i, a in enumerate(order)}


def fit_gccad_folds(graphs: list[AuthorGraph], folds: dict[str, int], cfg: GCCADConfig, seed: int):
    """One GCCAD per fold, trained on the training graphs outside it: ([models], [loss histories])."""
    k = max(folds.values()) + 1
    out = [train_gccad([g for g in graphs if folds[g.aid] != f], cfg, seed + 1 + f) for f in range(k)]
    return [m for m, _ in out], [h for _, h in out]


@torch.no_grad()
def gccad_score(models: list[GCCAD], g: AuthorGraph, fold: int | None = None) -> torch.Tensor:
    """cos(x_i, c) from the model of `fold` (a training author's out-of-fold model), or the mean over all."""
    if fold is not None:
        return models[fold].scores(g)
    return torch.stack([m.scores(g) for m in models]).mean(0)


def graph_features(models: list[GCCAD], graphs: list[AuthorGraph], folds: dict[str, int] | None = None) -> dict:
    """(author, paper) -> structural vector; training authors (in `folds`) scored out of fold."""
    out = {}
    for g in graphs:
        feats = structural_features(gccad_score(models, g, (folds or {}).get(g.aid)))
        out.update({(g.aid, pid): v for pid, v in zip(g.pids, feats, strict=True)})
    return out


def label_features(authors: dict[str, Author]) -> dict:
    """The oracle's graph vectors: `structural_features` of the labels themselves (1 normal, 0 outlier)."""
    out = {}
    for a in authors.values():
        y = torch.tensor([float(a.labels[p]) for p in a.papers])
        out.update({(a.aid, pid): v for pid, v in zip(a.papers, structural_features(y), strict=True)})
    return out


@dataclass
class Detector:
    """A trained IND detector: encoders, the fold GCCADs and MIND (stage outputs in `folder`)."""

    cfg: DetectorConfig
    folder: Path
    enc: Encoders
    gccads: list[GCCAD]
    mind: MindModel
    max_length: int
    history: dict = field(default_factory=dict)
    prompts: dict = field(default_factory=dict)  # prompt-length statistics per use ("train", "score")

    def features(self, data: IndData, authors: dict[str, Author], graph: dict | None = None) -> Features:
        pids = {p for a in authors.values() for p in a.papers}
        if graph is None:
            graph = graph_features(self.gccads, build_graphs(data, authors, self.enc))
        return Features(text_features(data, pids, self.enc), graph)

    def score(self, data: IndData, authors: dict[str, Author], stage: int = 3, graph: dict | None = None,
              ) -> dict[str, dict[str, float]]:
        """{aid: {pid: P(correct)}} from MIND with the modalities of `stage` (weights as loaded).

        `graph` replaces the GCCAD vectors (the oracle passes label vectors)."""
        feats = self.features(data, authors, graph) if stage == 3 else Features(
            text_features(data, {p for a in authors.values() for p in a.papers}, self.enc), {})
        titles = {p: data.papers[p]["title"] for a in authors.values() for p in a.papers}
        builder = PromptBuilder(self.mind.tok, titles, self.cfg.mind, self.max_length)
        packs = inference_packs(list(authors.values()), self.cfg.mind.packing_size, self.cfg.mind.max_profile)
        scores = score_packs(self.mind, packs, builder, feats, STAGE_MODALITIES[stage])
        self.prompts[f"score_stage{stage}"] = builder.stats()
        return scores

    def gccad_scores(self, data: IndData, authors: dict[str, Author]) -> dict[str, dict[str, float]]:
        """GCCAD alone: the mean anomaly score of the fold models."""
        return {g.aid: dict(zip(g.pids, gccad_score(self.gccads, g).tolist(), strict=True))
                for g in build_graphs(data, authors, self.enc)}


def new_mind(cfg: DetectorConfig, seed: int) -> MindModel:
    """The base LM with LoRA and freshly initialised projectors (seeded: same seed, same start)."""
    from tenfold.core.runtime import pick_device

    lm, tok = load_lm(cfg.lm)
    torch.manual_seed(seed)
    model = MindModel(lm, tok, cfg.text_dim, len(STRUCTURE), cfg.mind)
    return model.to(pick_device())


def _gccads(graphs: list[AuthorGraph], folds: dict[str, int], cfg: DetectorConfig, seed: int, folder: Path):
    """The fold GCCADs, trained once and reloaded from `folder` after."""
    paths = [folder / f"gccad-fold{f}.safetensors" for f in range(cfg.folds)]
    if all(p.is_file() for p in paths):
        models = []
        for p in paths:
            m = GCCAD(graphs[0].x.shape[1], cfg.gccad)
            m.load_state_dict(load_tensors(p))
            models.append(m.eval())
        return models, read_json(folder / "gccad.json")["losses"]
    models, losses = fit_gccad_folds(graphs, folds, cfg.gccad, seed)
    for m, p in zip(models, paths, strict=True):
        save_tensors(p, m.state_dict())
    atomic_write_json(folder / "gccad.json", {"losses": losses, "in_dim": graphs[0].x.shape[1]})
    return models, losses


def fit_detector(data: IndData, folder: str | Path, cfg: DetectorConfig, seed: int = 0, on_stage=None,
                 stages: tuple[int, ...] = (1, 2, 3)) -> Detector:
    """Train everything on `data.train`; resumable (finished parts are reloaded from `folder`).

    `on_stage(stage, detector)` is called after each MIND stage (e.g. to evaluate stages 1 and 2);
    `stages` stops early (e.g. (1, 2): the text channel only).
    """
    folder = Path(folder)
    train = data.split("train")
    max_length = prompt_limit(cfg)
    enc = Encoders.fit(cfg, data, seed)
    if cfg.text_encoder != "tfidf":
        cfg = dataclasses.replace(cfg, text_dim=enc.full.dim)
    saved = folder / "detector.json"
    if saved.is_file() and DetectorConfig.from_dict(read_json(saved)["config"]) != cfg:
        raise InputError(f"{folder} holds a detector trained with another configuration; use a new --model folder")
    folds = assign_folds(list(train), cfg.folds, seed)
    atomic_write_json(saved, {"config": cfg.to_dict(), "seed": seed, "folds": folds})
    enc.save(folder)
    graphs = build_graphs(data, train, enc)
    say(f"[ind] {len(graphs)} train author graphs; training {cfg.folds} fold GCCADs")
    gccads, ghist = _gccads(graphs, folds, cfg, seed, folder)
    feats = Features(text_features(data, {p for a in train.values() for p in a.papers}, enc),
                     graph_features(gccads, graphs, folds))
    det = Detector(cfg, folder, enc, gccads, new_mind(cfg, seed), max_length, history={"gccad": ghist})
    train_mind(det, data, feats, folder, seed, on_stage, stages)
    return det


def train_mind(det: Detector, data: IndData, feats: Features, folder: Path, seed: int, on_stage=None,
               stages: tuple[int, ...] = (1, 2, 3)) -> None:
    """MIND's stages on the training authors' packs, with `feats` as the text and graph vectors."""
    cfg = det.cfg
    train = data.split("train")
    titles = {p: data.papers[p]["title"] for a in train.values() for p in a.papers}
    builder = PromptBuilder(det.mind.tok, titles, cfg.mind, det.max_length)
    packs = balanced_packs(list(train.values()), cfg.mind.packing_size, cfg.mind.repeats, cfg.mind.max_profile, seed)
    for stage in stages:
        say(f"[ind] MIND stage {stage} ({cfg.mind.stages[stage - 1].steps} steps)")
        res = train_stage(det.mind, stage, packs, builder, feats, folder, seed)
        det.history[f"stage{stage}"] = res["losses"]
        if on_stage is not None:
            on_stage(stage, det)
    det.prompts["train"] = builder.stats()


def load_detector(folder: str | Path, stage: int = 3) -> Detector:
    """Reload a detector written by `fit_detector` (base LM from its recorded name or path)."""
    folder = Path(folder)
    if not (folder / "detector.json").is_file():
        raise InputError(f"{folder} is not a trained IND detector (no detector.json); run `tenfold ind train` first")
    weights = folder / f"stage{stage}.safetensors"
    if not weights.is_file():
        raise InputError(f"{folder} has no finished stage {stage}; rerun `tenfold ind train` to resume it")
    meta = read_json(folder / "detector.json")
    cfg = DetectorConfig.from_dict(meta["config"])
    enc = Encoders.load(cfg, folder)
    in_dim = int(read_json(folder / "gccad.json")["in_dim"])
    gccads = []
    for f in range(cfg.folds):
        m = GCCAD(in_dim, cfg.gccad)
        m.load_state_dict(load_tensors(folder / f"gccad-fold{f}.safetensors"))
        gccads.append(m.eval())
    mind = new_mind(cfg, int(meta["seed"]))
    mind.load_trainable(load_tensors(weights))
    mind.eval()
    return Detector(cfg, folder, enc, gccads, mind, prompt_limit(cfg))
