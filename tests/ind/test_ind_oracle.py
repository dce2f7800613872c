"""The oracle of the splice path: with the labels as graph vectors, stage 3 alone must score the held-out
authors almost perfectly (the graph vector reaches the label slot), and a shuffled oracle must not."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from tenfold.data.whoiswho import GeneratorConfig, generate_ind, load_ind
from tenfold.ind.metrics import weighted_auc_map
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
from tenfold.ind.pipeline import STRUCTURE, label_features

TEXT_DIM = 4


def _shuffled(authors, seed):
    """Each author's labels permuted among its papers: graph vectors that carry no information."""
    rng = random.Random(seed)
    out = {}
    for a in authors.values():
        pids = list(a.papers)
        rng.shuffle(pids)
        out[a.aid] = copy.copy(a)
        out[a.aid].outliers = set(pids[: len(a.outliers)])
    return out


@pytest.mark.parametrize("null", [False, True], ids=["labels", "shuffled-labels"])
def test_label_graph_vectors_drive_stage_three_to_near_perfect_ranking(tmp_path, tiny_lm, null):
    lm, tok = tiny_lm
    generate_ind(tmp_path / "data", 1, GeneratorConfig(n_train=12, n_valid=10, min_papers=8, max_papers=12))
    data = load_ind(tmp_path / "data")
    train, valid = data.split("train"), data.split("valid")
    cfg = MindConfig(graph_slot="label", max_profile=6, repeats=2, save_every=1000,
                     stages=(StageConfig(1, 1e-3), StageConfig(1, 1e-3), StageConfig(40, 1e-2)))
    torch.manual_seed(0)
    model = MindModel(copy.deepcopy(lm), copy.deepcopy(tok), TEXT_DIM, len(STRUCTURE), cfg)
    g = torch.Generator().manual_seed(0)
    text = {p: torch.randn(TEXT_DIM, generator=g) for p in data.papers}
    graph = label_features(_shuffled(train, 0) if null else train)
    graph.update(label_features(_shuffled(valid, 1) if null else valid))
    feats = Features(text, graph)
    titles = {p: info["title"] for p, info in data.papers.items()}
    packs = balanced_packs(list(train.values()), cfg.packing_size, cfg.repeats, cfg.max_profile, seed=0)
    train_stage(model, 3, packs, PromptBuilder(model.tok, titles, cfg, 1024), feats, tmp_path / "run", seed=0)
    scores = score_packs(model, inference_packs(list(valid.values()), cfg.packing_size, cfg.max_profile),
                         PromptBuilder(model.tok, titles, cfg, 1024), feats, STAGE_MODALITIES[3])
    wauc = weighted_auc_map({a.aid: a.labels for a in valid.values()}, scores).wauc
    if null:
        assert wauc < 0.9
    else:
        assert wauc > 0.95
