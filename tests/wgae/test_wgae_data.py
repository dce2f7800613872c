"""Planetoid raw files written here, bad-input handling, and the .npz round trip."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from tenfold.core.errors import InputError
from tenfold.data.planetoid import build_network, load_network, load_planetoid, save_network


def _write_planetoid(folder, name="cora"):
    """A Planetoid like the real ones: 20 labelled nodes in x/y, 530 in allx/ally (the reader's 500-node
    validation range must fit), 6 test nodes (tx/ty) whose ids in test.index are shuffled."""
    rng = np.random.default_rng(0)
    n_all, n_test = 530, 6
    feats = (rng.random((n_all + n_test, 5)) < 0.5).astype(np.float32)
    feats[:, 0] = 1
    labels = rng.integers(0, 3, n_all + n_test)
    onehot = np.eye(3)[labels]
    test_ids = np.array([532, 530, 535, 531, 534, 533])
    parts = {"x": sp.csr_matrix(feats[:20]), "y": onehot[:20], "allx": sp.csr_matrix(feats[:n_all]),
             "ally": onehot[:n_all], "tx": sp.csr_matrix(feats[test_ids]), "ty": onehot[test_ids],
             "graph": {0: [1, 2], 1: [0], 2: [0, 3], 3: [2], 530: [535], 535: [530]}}
    for key, val in parts.items():
        with open(folder / f"ind.{name}.{key}", "wb") as f:
            pickle.dump(val, f)
    (folder / f"ind.{name}.test.index").write_text("\n".join(map(str, test_ids)) + "\n")
    return feats, labels


def test_load_planetoid_reads_raw_files_written_here(tmp_path):
    feats, labels = _write_planetoid(tmp_path)
    net = load_planetoid(tmp_path, "Cora")
    assert (net.n_nodes, net.n_words, net.n_edges) == (536, 5, 4)
    assert np.allclose(net.dense_counts(), feats)  # test rows put back in node order by test.index
    assert net.labels.tolist() == labels.tolist()
    assert sorted(map(tuple, net.edges.T.tolist())) == [(0, 1), (0, 2), (2, 3), (530, 535)]
    assert net.report["isolated_nodes"] == 536 - 6


def test_load_planetoid_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="one of"):
        load_planetoid(tmp_path, "reddit")
    with pytest.raises(InputError, match="no Planetoid files"):
        load_planetoid(tmp_path, "cora")
    _write_planetoid(tmp_path)
    (tmp_path / "ind.cora.graph").unlink()
    with pytest.raises(InputError, match="missing Planetoid files ind.cora.graph"):
        load_planetoid(tmp_path, "cora")


def test_build_network_cleans_links_and_reports_what_it_did():
    counts = np.array([[1, 0], [0, 2], [0, 0], [3, 1]])
    edges = np.array([[0, 1], [1, 0], [0, 1], [2, 2], [3, 1]])  # (E, 2): duplicate, reverse, self-loop
    net = build_network(counts, edges)
    assert net.edges.tolist() == [[0, 1], [1, 3]]
    assert net.report["self_loops_dropped"] == 1
    assert net.report["duplicate_edges_dropped"] == 2
    assert net.report["empty_documents"] == 1 and net.report["isolated_nodes"] == 1


@pytest.mark.parametrize("counts,edges,match", [
    (np.ones((3, 2)), [[0, 3]], r"in \[0, 2\]"),
    (np.ones((3, 2)), [[-1, 0]], r"in \[0, 2\]"),
    (np.zeros((3, 2)), [[0, 1]], "every document is empty"),
    (-np.ones((3, 2)), [[0, 1]], "non-negative"),
    (np.ones((3, 2)), np.ones((3, 3), int), "shape"),
    (np.ones((3, 2)), [[0.5, 1]], "integers"),
])
def test_build_network_rejects_bad_input(counts, edges, match):
    with pytest.raises(InputError, match=match):
        build_network(counts, np.asarray(edges).T if np.asarray(edges).shape[-1] == 2 else edges)


def test_save_and_load_network_round_trip(tmp_path, small_net):
    path = save_network(small_net, tmp_path / "net.npz")
    back = load_network(path)
    assert back.synthetic and back.n_edges == small_net.n_edges
    assert np.array_equal(back.dense_counts(), small_net.dense_counts())
    assert np.allclose(back.truth["phi"][1], small_net.truth["phi"][1])
    with pytest.raises(InputError, match="does not exist"):
        load_network(tmp_path / "missing.npz")
