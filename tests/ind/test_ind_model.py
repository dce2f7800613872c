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
    cfg = MindConfig(save_every=100, stages=(StageConfig(4, 1e-2, "cosine", 0.1), StageConfig(4, 1e-2), StageConfig(4, 1e-2)))
    torch.manual_seed(0)
    return MindModel(copy.deepcopy(lm), copy.deepcopy(tok), TEXT_DIM, GRAPH_DIM, cfg)


def _feats():
    g = torch.Generator().manual_seed(1)
    return Features({p: torch.randn(TEXT_DIM, generator=g) for p in TITLES},
                    {("A", p): torch.randn(GRAPH_DIM, generator=g) for p in TITLES})


def _inputs(mind, modalities=("text", "graph")):
    builder = PromptBuilder(mind.tok, TITLES, mind.cfg, 512)
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
        loss = mind(input_ids, mask, pack.targets, text, graph)
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
    builder = PromptBuilder(mind.tok, TITLES, mind.cfg, 512)
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


def test_prompt_cut_to_fit_drops_whole_context_titles_and_records_the_cut(mind):
    titles = {f"p{i}": f"graph node edge paper number {i}" for i in range(30)}
    pack = Pack("A", list(titles), ["p1", "p2"], [1, 0])
    wide = PromptBuilder(mind.tok, titles, mind.cfg, 2000)
    full_ids, full_pids = wide.encode(pack, ("text", "graph"))
    limit = len(full_ids) - 20
    builder = PromptBuilder(mind.tok, titles, mind.cfg, limit)
    ids, pids = builder.encode(pack, ("text", "graph"))
    assert len(ids) <= limit < len(full_ids)
    kept = len(pids) - len(pack.queries)
    assert pids[:kept] == pack.context[:kept] and pids[kept:] == pack.queries  # a prefix of whole titles
    stats = builder.stats()
    assert stats["cut_prompts"] == 1 and stats["cut_titles"] == 30 - kept and stats["max"] == len(ids)
    assert wide.stats()["cut_prompts"] == 0 and len(full_pids) == 32


def test_queries_longer_than_the_prompt_limit_are_refused_naming_the_settings(mind):
    builder = PromptBuilder(mind.tok, TITLES, mind.cfg, 30)
    with pytest.raises(InputError, match="packing_size or max_title_words"):
        builder.encode(Pack("A", list(TITLES), list(TITLES)[:5], [1] * 5), ("text", "graph"))


def test_label_routing_puts_each_query_graph_token_right_before_its_label_slot(tiny_lm):
    lm, tok = tiny_lm
    cfg = MindConfig(graph_slot="label")
    model = MindModel(copy.deepcopy(lm), copy.deepcopy(tok), TEXT_DIM, GRAPH_DIM, cfg)
    builder = PromptBuilder(model.tok, TITLES, cfg, 512)
    ids, pids = builder.encode(Pack("A", ["p0", "p1", "p3"], ["p2", "p5"], [1, 0]), ("text", "graph"))
    ids = torch.tensor(ids)
    labels = (ids == model.label_id).nonzero().squeeze(1)
    graphs = (ids == model.graph_id).nonzero().squeeze(1)
    assert torch.equal(graphs[-2:], labels - 1)  # the label slot (pos - 1) is the query's graph token
    assert len(graphs) == len(pids) == 5 and pids == ["p0", "p1", "p3", "p2", "p5"]
    # the official routing: the query's graph token comes before its title, far from the slot
    official = PromptBuilder(model.tok, TITLES, MindConfig(), 512)
    ids2, _ = official.encode(Pack("A", ["p0", "p1", "p3"], ["p2", "p5"], [1, 0]), ("text", "graph"))
    ids2 = torch.tensor(ids2)
    assert not set(((ids2 == model.label_id).nonzero().squeeze(1) - 1).tolist()) & set((ids2 == model.graph_id).nonzero().squeeze(1).tolist())


def test_stage_configs_refuse_impossible_settings():
    with pytest.raises(InputError, match="steps >= 1"):
        StageConfig(0, 1e-3)
    with pytest.raises(InputError, match="cosine"):
        StageConfig(5, 1e-3, "linear")
    with pytest.raises(InputError, match="graph_slot"):
        MindConfig(graph_slot="middle")


def test_cosine_schedule_warms_up_then_decays_to_zero():
    from tenfold.ind.model import stage_lr

    s = StageConfig(20, 1.0, "cosine", 0.1)
    lrs = [stage_lr(s, i) for i in range(20)]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False)) and lrs[-1] < 0.01
    assert [stage_lr(StageConfig(5, 0.3), i) for i in range(5)] == [0.3] * 5
