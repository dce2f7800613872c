"""Graph construction on a hand-built author, name normalisation and the no-edge fallback."""

from __future__ import annotations

import pytest
import torch

from tenfold.ind.graph import TfidfSvdEncoder, author_graph, normalize_name

PAPERS = {
    # target "Jie Tang" (written differently on each paper)
    "a": {"title": "graph mining", "venue": "KDD Mining", "authors": [
        {"name": "Jie Tang", "org": "Tsinghua Beijing"}, {"name": "Li Wei", "org": "Peking Beijing"}]},
    "b": {"title": "graph nets", "venue": "Mining Letters", "authors": [
        {"name": "Wei Li", "org": "Peking Beijing"}, {"name": "tang jié", "org": "Tsinghua"},
        {"name": "Bo Chen", "org": "Xidian"}]},
    "c": {"title": "cell biology", "venue": "Nature", "authors": [
        {"name": "Ann Smith", "org": "Oxford"}]},  # the target name is missing here
}


def _graph():
    x = torch.eye(3)
    return author_graph("aid", "Jie Tang", ["a", "b", "c"], PAPERS, x, {"a": 1, "b": 1, "c": 0})


def test_name_normalisation_ignores_accents_case_and_order():
    assert normalize_name("Tang Jié") == normalize_name("jie  TANG") == frozenset({"jie", "tang"})


def test_edge_weights_match_hand_computation():
    g = _graph()
    edges = {(int(i), int(j)): w.tolist() for i, j, w in zip(g.edge_index[0], g.edge_index[1], g.edge_attr, strict=True)}
    # co-authors without the target: a {li wei}, b {li wei, bo chen} -> 1/2
    # org words (stopwords kept out): a {tsinghua, beijing, peking}, b {peking, beijing, tsinghua, xidian} -> 3/4
    # venue words: a {kdd, mining}, b {mining} ("letters" is a stopword) -> 1/2
    assert edges[(0, 1)] == pytest.approx([0.5, 0.75, 0.5])
    assert edges[(1, 0)] == edges[(0, 1)]  # both directions
    assert not any(0 in e and 2 in e or 1 in e and 2 in e for e in edges)  # c shares nothing
    assert g.edge_label.tolist() == [1.0, 1.0]
    assert g.name_missing == 1  # paper c lacks the target name: nothing removed (documented fallback)


def test_graph_without_edges_falls_back_to_complete_graph():
    lone = {k: {**v, "venue": v["title"]} for k, v in PAPERS.items()}
    lone = {"c": PAPERS["c"], "d": {"title": "x", "venue": "Science", "authors": []}}
    g = author_graph("aid", "Jie Tang", ["c", "d"], lone, torch.zeros(2, 4))
    assert g.edge_index.tolist() == [[0, 1], [1, 0]]
    assert torch.allclose(g.edge_attr, torch.full((2, 3), 1e-4))
    assert g.y is None and g.edge_label is None


def test_tfidf_encoder_round_trips_through_safetensors(tmp_path):
    texts = ["graph mining nodes", "graph neural nets", "cell biology protein", "protein folding cell"]
    enc = TfidfSvdEncoder(dim=3).fit(texts)
    enc.save(tmp_path / "enc")
    again = TfidfSvdEncoder.load(tmp_path / "enc")
    z = enc.encode(texts)
    assert torch.allclose(z, again.encode(texts))
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)
