"""MIND's token splice, label-slot loss mask, Yes/No read-out and the resume of an interrupted stage."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tenfold.core.errors import InputError
from tenfold.ind.model import (
    Features,
    MindConfig,
    MindModel,
    Pack,
    PromptBuilder,
    StageConfig,
    balanced_packs,
    label_slot_labels,
    train_stage,
)

TEXT_DIM, GRAPH_DIM = 6, 5
TITLES = {f"p{i}": f"graph node edge paper {i}" for i in range(8)}


@pytest.fixture()
def mind(tiny_lm):
    lm, tok = tiny_lm
    cfg = MindConfig(max_length=512, save_every=100,
                     stages=(StageConfig(4, 1e-2, "cosine"), StageConfig(4, 1e-2), StageConfig(4, 1e-2)))
    torch.manual_seed(0)
    return MindModel(copy.deepcopy(lm), copy.deepcopy(tok), TEXT_DIM, GRAPH_DIM, cfg)


def _feats():
    g = torch.Generator().manual_seed(1)
    return Features({p: torch.randn(TEXT_DIM, generator=g) for p in TITLES},
                    {("A", p): torch.randn(GRAPH_DIM, generator=g) for p in TITLES})


def _inputs(mind, modalities=("text", "graph")):
    builder = PromptBuilder(mind.tok, TITLES, mind.cfg)
    pack = Pack("A", list(TITLES), ["p2", "p5", "p7"], [1, 0, 1])
    ids, pids = builder.encode(pack, modalities)
    text, graph = _feats().rows("A", pids, modalities)
    return torch.tensor([ids]), pids, text, graph, pack


def test_projected_vectors_reach_the_input_embeddings_at_special_positions(mind):
    input_ids, pids, text, graph, _ = _inputs(mind)
    assert pids == list(TITLES) + ["p2", "p5", "p7"]
    seen = {}
    layer0 = mind.lm.get_base_model().model.layers[0]
    def grab(module, args, kwargs):
        seen["h"] = (args[0] if args else kwargs["hidden_states"]).detach()

    handle = layer0.register_forward_pre_hook(grab, with_kwargs=True)
    mind.scores(input_ids, torch.ones_like(input_ids), text, graph)
    handle.remove()
    h = seen["h"][0]
    emb_pos = (input_ids[0] == mind.emb_id).nonzero().squeeze(1)
    graph_pos = (input_ids[0] == mind.graph_id).nonzero().squeeze(1)
    assert len(emb_pos) == len(graph_pos) == len(pids)
    with torch.no_grad():
        assert torch.allclose(h[emb_pos], mind.text_proj(text), atol=1e-6)
        assert torch.allclose(h[graph_pos], mind.graph_proj(graph), atol=1e-6)
        other = (input_ids[0] != mind.emb_id) & (input_ids[0] != mind.graph_id)
        table = mind.lm.get_input_embeddings().weight
        assert torch.equal(h[other], table[input_ids[0][other]])


def test_splice_rejects_a_feature_count_mismatch(mind):
    input_ids, _, text, graph, _ = _inputs(mind)
    with pytest.raises(InputError, match="feature vectors"):
        mind.splice(input_ids, text[:-1], graph)


def test_label_slot_mask_marks_only_the_position_before_each_label_token():
    ids = torch.tensor([[5, 9, 7, 9, 3, 9]])
    labels = label_slot_labels(ids, label_id=9, targets=[11, 12, 11])
    assert labels.tolist() == [[11, -100, 12, -100, 11, -100]]
    with pytest.raises(InputError):
        label_slot_labels(ids, 9, [1])


def test_loss_and_scores_match_a_plain_forward_reference(mind):
    input_ids, _, text, graph, pack = _inputs(mind)
    mask = torch.ones_like(input_ids)
    mind.eval()
    with torch.no_grad():
        loss = mind.loss(input_ids, mask, pack.targets, text, graph)
        scores = mind.scores(input_ids, mask, text, graph)
        logits = mind.lm(inputs_embeds=mind.splice(input_ids, text, graph), attention_mask=mask).logits[0].double()
    slots = (input_ids[0] == mind.label_id).nonzero().squeeze(1) - 1
    targets = torch.tensor([mind.yes_id if t else mind.no_id for t in pack.targets])
    ref_loss = F.cross_entropy(logits[slots], targets)
    ref_scores = torch.softmax(logits[slots][:, [mind.yes_id, mind.no_id]], dim=1)[:, 0]
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-4)
    assert torch.allclose(scores.double(), ref_scores, atol=1e-5)


def test_interrupted_stage_resumes_to_the_same_weights(mind, tmp_path):
    from tenfold.data.whoiswho import Author

    authors = [Author("A", "x", list(TITLES), {"p1", "p4", "p6"})]
    packs = balanced_packs(authors, pack_size=3, repeats=2, max_profile=8, seed=0)
    assert all(sum(p.targets) * 2 == len(p.targets) or len(p.targets) % 2 for p in packs)
    builder = PromptBuilder(mind.tok, TITLES, mind.cfg)
    feats = _feats()
    fresh = copy.deepcopy(mind)
    full = train_stage(fresh, 1, packs, builder, feats, tmp_path / "full", seed=0)
    part = train_stage(mind, 1, packs, builder, feats, tmp_path / "resumed", seed=0, stop_after=2)
    assert not part["done"] and len(part["losses"]) == 2
    again = copy.deepcopy(mind)
    for p in again.stage_parameters(1).values():  # a fresh process would start from scratch weights
        torch.nn.init.normal_(p)
    resumed = train_stage(again, 1, packs, builder, feats, tmp_path / "resumed", seed=0)
    assert resumed["done"] and resumed["losses"] == full["losses"]
    a, b = fresh.trainable_state(), again.trainable_state()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # a finished stage is loaded, not retrained
    assert train_stage(again, 1, packs, builder, feats, tmp_path / "resumed", seed=0)["losses"] == full["losses"]
