"""The IND detector end to end: text encoders -> author graphs -> GCCAD (structural embeddings) -> MIND's
three stages; saved to one folder (safetensors + JSON, no pickle) so `predict` reloads it."""

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


@dataclass(frozen=True)
class DetectorConfig:
    lm: str = "tiny-lm"  # a zoo name or a Hugging Face causal-LM folder
    text_encoder: str = "tfidf"  # "tfidf" or a Hugging Face encoder folder (MIND: roberta-base)
    text_dim: int = 128  # TF-IDF + SVD width
    crossfit: int = 2  # folds for the train authors' GCCAD embeddings (0: embed with the model trained on them)
    gccad: GCCADConfig = GCCADConfig()
    mind: MindConfig = MindConfig()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DetectorConfig:
        mind = dict(d["mind"])
        mind["stages"] = tuple(StageConfig(**s) for s in mind["stages"])
        mind["lora_targets"] = tuple(mind["lora_targets"])
        return cls(d["lm"], d["text_encoder"], d["text_dim"], d["crossfit"], GCCADConfig(**d["gccad"]), MindConfig(**mind))


def load_lm(name_or_path: str):
    """(model, tokenizer): a zoo model by name or any local Hugging Face causal LM folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name_or_path)
    if not path.exists():
        from tenfold.zoo.registry import get_model

        path = get_model(name_or_path).ensure()  # raises a clear error for an unknown name
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a Hugging Face model folder (no config.json)")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


@dataclass
class Encoders:
    title: object
    full: object

    @classmethod
    def fit(cls, cfg: DetectorConfig, data: IndData, seed: int) -> Encoders:
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


def graph_features(model: GCCAD, graphs: list[AuthorGraph]) -> dict[tuple[str, str], torch.Tensor]:
    """(author, paper) -> [x_i, cos_i, c, mean cos]: the paper's and the author's GCCAD vectors."""
    out = {}
    for g in graphs:
        per, whole = model.embed(g)
        for pid, v in zip(g.pids, per, strict=True):
            out[(g.aid, pid)] = torch.cat([v, whole])
    return out


def crossfit_graph_features(graphs: list[AuthorGraph], cfg: DetectorConfig, seed: int) -> dict:
    """Train-author GCCAD vectors from models that did not see that author (k folds), so MIND is not
    trained on over-confident structural scores. Ours; the MIND code does not say how it was done."""
    if cfg.crossfit < 2:
        model, _ = train_gccad(graphs, cfg.gccad, seed)
        return graph_features(model, graphs)
    idx = list(range(len(graphs)))
    random.Random(seed).shuffle(idx)
    out = {}
    for k in range(cfg.crossfit):
        held = [graphs[i] for i in idx[k:: cfg.crossfit]]
        rest = [g for g in graphs if g not in held]
        model, _ = train_gccad(rest, cfg.gccad, seed + 1 + k)
        out.update(graph_features(model, held))
    return out


@dataclass
class Detector:
    """A trained IND detector: encoders, GCCAD and MIND (stage outputs in `folder`)."""

    cfg: DetectorConfig
    folder: Path
    enc: Encoders
    gccad: GCCAD
    mind: MindModel
    history: dict = field(default_factory=dict)

    def _features(self, data: IndData, authors: dict[str, Author]) -> tuple[list[AuthorGraph], Features]:
        graphs = build_graphs(data, authors, self.enc)
        pids = {p for a in authors.values() for p in a.papers}
        return graphs, Features(text_features(data, pids, self.enc), graph_features(self.gccad, graphs))

    def score(self, data: IndData, authors: dict[str, Author], stage: int = 3) -> dict[str, dict[str, float]]:
        """{aid: {pid: P(correct)}} from MIND with the modalities of `stage` (weights as loaded)."""
        graphs, feats = self._features(data, authors)
        titles = {p: data.papers[p]["title"] for a in authors.values() for p in a.papers}
        builder = PromptBuilder(self.mind.tok, titles, self.cfg.mind)
        packs = inference_packs(list(authors.values()), self.cfg.mind.packing_size, self.cfg.mind.max_profile)
        return score_packs(self.mind, packs, builder, feats, STAGE_MODALITIES[stage])

    def gccad_scores(self, data: IndData, authors: dict[str, Author]) -> dict[str, dict[str, float]]:
        out = {}
        with torch.no_grad():
            for g in build_graphs(data, authors, self.enc):
                out[g.aid] = dict(zip(g.pids, self.gccad.scores(g).tolist(), strict=True))
        return out


def _new_mind(cfg: DetectorConfig) -> MindModel:
    from tenfold.core.runtime import pick_device

    lm, tok = load_lm(cfg.lm)
    model = MindModel(lm, tok, cfg.text_dim, 2 * (cfg.gccad.hidden + 1), cfg.mind)
    return model.to(pick_device())


def fit_detector(data: IndData, folder: str | Path, cfg: DetectorConfig, seed: int = 0,
                 on_stage=None) -> Detector:
    """Train everything on `data.train`; resumable (finished parts are reloaded from `folder`).

    `on_stage(stage, detector)` is called after each MIND stage (e.g. to evaluate stage 1 and 2).
    """
    folder = Path(folder)
    train = data.split("train")
    enc = Encoders.fit(cfg, data, seed)
    if cfg.text_encoder != "tfidf":
        cfg = dataclasses.replace(cfg, text_dim=enc.full.dim)
    saved = folder / "detector.json"
    if saved.is_file() and DetectorConfig.from_dict(read_json(saved)["config"]) != cfg:
        raise InputError(f"{folder} holds a detector trained with another configuration; use a new --model folder")
    atomic_write_json(saved, {"config": cfg.to_dict(), "seed": seed})
    enc.save(folder)
    graphs = build_graphs(data, train, enc)
    say(f"[ind] {len(graphs)} train author graphs; training GCCAD")
    gpath = folder / "gccad.safetensors"
    if gpath.is_file():
        gccad = GCCAD(graphs[0].x.shape[1], cfg.gccad)
        gccad.load_state_dict(load_tensors(gpath))
        gccad.eval()
        ghist = read_json(folder / "gccad.json")["losses"]
    else:
        gccad, ghist = train_gccad(graphs, cfg.gccad, seed)
        save_tensors(gpath, gccad.state_dict())
        atomic_write_json(folder / "gccad.json", {"losses": ghist, "in_dim": graphs[0].x.shape[1]})
    gfeat = crossfit_graph_features(graphs, cfg, seed)
    pids = {p for a in train.values() for p in a.papers}
    feats = Features(text_features(data, pids, enc), gfeat)
    mind = _new_mind(cfg)
    titles = {p: data.papers[p]["title"] for p in pids}
    builder = PromptBuilder(mind.tok, titles, cfg.mind)
    packs = balanced_packs(list(train.values()), cfg.mind.packing_size, cfg.mind.repeats, cfg.mind.max_profile, seed)
    det = Detector(cfg, folder, enc, gccad, mind, history={"gccad": ghist})
    for stage in (1, 2, 3):
        say(f"[ind] MIND stage {stage} ({cfg.mind.stages[stage - 1].steps} steps)")
        res = train_stage(mind, stage, packs, builder, feats, folder, seed)
        det.history[f"stage{stage}"] = res["losses"]
        if on_stage is not None:
            on_stage(stage, det)
    return det


def load_detector(folder: str | Path, stage: int = 3) -> Detector:
    """Reload a detector written by `fit_detector` (base LM from its recorded name or path)."""
    folder = Path(folder)
    if not (folder / "detector.json").is_file():
        raise InputError(f"{folder} is not a trained IND detector (no detector.json); run `tenfold ind train` first")
    weights = folder / f"stage{stage}.safetensors"
    if not weights.is_file():
        raise InputError(f"{folder} has no finished stage {stage}; rerun `tenfold ind train` to resume it")
    cfg = DetectorConfig.from_dict(read_json(folder / "detector.json")["config"])
    enc = Encoders.load(cfg, folder)
    gccad = GCCAD(int(read_json(folder / "gccad.json")["in_dim"]), cfg.gccad)
    gccad.load_state_dict(load_tensors(folder / "gccad.safetensors"))
    gccad.eval()
    mind = _new_mind(cfg)
    mind.load_trainable(load_tensors(weights))
    mind.eval()
    return Detector(cfg, folder, enc, gccad, mind)
