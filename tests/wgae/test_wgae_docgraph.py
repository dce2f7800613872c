"""The Python-docs network reader on a tiny Sphinx site written here, the DC-SBM + LDA generator, and
NPMI coherence against a hand-worked example."""

from __future__ import annotations

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.data.docgraph import (
    DocGraphConfig,
    docs_graph_statistics,
    load_python_docs_graph,
    parse_docs,
    python_doc_roots,
    sample_dcsbm_lda,
)
from tenfold.data.planetoid import build_network, load_network, save_network
from tenfold.wgae.evaluate import npmi_coherence

PAGE = """<html><body><div class="related"><a href="{nav}">next</a></div>
<div class="document"><div class="body" role="main">
<section id="{id}"><h1>{title}<a class="headerlink" href="#{id}">¶</a></h1>
<p>{text}</p>
<pre>codeword codeword codeword</pre>
<div class="toctree-wrapper compound"><a href="{toc}">contents entry</a> tocword</div>
<section id="{id}-part"><h2>Part</h2><p>{part}</p>{links}</section>
</section></div></div>
<div class="sphinxsidebar"><a href="{nav}">sidebar</a> sideword</div></body></html>"""


def _site(root):
    """Three library pages, a tutorial page and a search page (skipped); links in the main text only."""
    pages = {
        "library/alpha.html": ("alpha", "socket network server client", "server socket timeout",
                               '<a href="beta.html#beta-part">b</a> <a href="https://example.org/">ext</a>'),
        "library/beta.html": ("beta", "socket network client protocol", "client protocol timeout",
                              '<a href="../tutorial/intro.html">t</a> <a href="#beta">self</a>'),
        "library/gamma.html": ("gamma", "parser grammar token syntax", "token syntax grammar", ""),
        "tutorial/intro.html": ("intro", "parser network tutorial token", "tutorial grammar server",
                                '<a href="../library/gamma.html">g</a>'),
    }
    for rel, (ident, text, part, links) in pages.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PAGE.format(id=ident, title=ident.title(), text=text, part=part, links=links,
                                    nav="../library/alpha.html", toc="../library/gamma.html"))
    (root / "search.html").write_text(PAGE.format(id="s", title="S", text="searchword", part="", links="",
                                                  nav="x.html", toc="y.html"))


def test_parse_docs_reads_main_text_sections_and_hyperlinks(tmp_path):
    _site(tmp_path)
    names, texts, _, links = parse_docs(tmp_path, "page")
    assert names == ["library/alpha.html", "library/beta.html", "library/gamma.html", "tutorial/intro.html"]
    joined = " ".join(texts)
    for outside in ("codeword", "tocword", "sideword", "searchword", "next"):  # code, toctree, sidebar, nav
        assert outside not in joined
    assert sorted(set(links)) == [(0, 1), (1, 1), (1, 3), (3, 2)]  # the external link is dropped
    names, texts, _, links = parse_docs(tmp_path, "section")
    assert "library/beta.html#beta-part" in names
    src, dst = names.index("library/alpha.html#alpha-part"), names.index("library/beta.html#beta-part")
    assert (src, dst) in links  # a fragment resolves to the section holding that anchor


def test_docs_graph_network_has_vocab_links_and_labels_and_round_trips(tmp_path):
    _site(tmp_path / "html")
    net = load_python_docs_graph(DocGraphConfig(vocab_size=10, min_df=2, max_df=1.0, min_tokens=1),
                                 root=tmp_path / "html", cache=False)
    assert net.n_nodes == 4 and not net.synthetic
    assert net.edges.T.tolist() == [[0, 1], [1, 3], [2, 3]]  # undirected, the self-link dropped
    assert set(net.vocab) >= {"socket", "token", "grammar"} and "codeword" not in net.vocab
    assert net.label_names == ["library", "tutorial"] and net.labels.tolist() == [0, 0, 0, 1]
    stats = docs_graph_statistics(net)
    assert stats["nodes"] == 4 and stats["links"] == 3 and stats["classes"] == 2
    back = load_network(save_network(net, tmp_path / "n.npz"))
    assert back.vocab == net.vocab and back.node_names == net.node_names
    with pytest.raises(InputError, match="no HTML"):
        load_python_docs_graph(root=tmp_path / "html" / "missing", cache=False)
    with pytest.raises(InputError, match="level"):
        DocGraphConfig(level="chapter")


@pytest.mark.skipif(not python_doc_roots(), reason="python3-doc is not installed")
def test_installed_docs_are_read_once_per_real_folder():
    import glob
    import os

    linked = glob.glob("/usr/share/doc/python3*/html")
    roots = python_doc_roots()
    assert len(roots) == len({os.path.realpath(r) for r in roots}) <= len(linked)


def test_dcsbm_lda_has_blocks_heavy_tailed_degrees_and_lda_documents():
    net = sample_dcsbm_lda(600, 200, blocks=4, topics=8, doc_length=50.0, mean_degree=10.0, within=0.8, seed=0)
    assert net.synthetic and net.truth["phi"][0].shape == (200, 8)
    assert 0.7 * 3000 < net.n_edges <= 3000 * 1.1  # repeats and self-loops only lower the count
    same = net.labels[net.edges[0]] == net.labels[net.edges[1]]
    assert 0.7 < same.mean() < 0.9
    deg = net.degrees()
    assert deg.max() > 4 * np.median(deg)  # degree correction: hubs
    assert abs(net.vals.sum() / 600 - 50) < 3
    with pytest.raises(InputError):
        sample_dcsbm_lda(5, 10, blocks=4)


def test_npmi_matches_a_hand_worked_example():
    # 4 documents over 3 words: w0 and w1 always together (NPMI 1), w2 never with them (-1)
    counts = np.array([[1, 2, 0], [3, 1, 0], [0, 0, 1], [0, 0, 2]])
    net = build_network(counts, np.zeros((2, 0), int))
    phi = np.array([[0.5, 0.1], [0.4, 0.1], [0.1, 0.8]])
    top2 = npmi_coherence(phi, net, top=2)
    assert np.allclose(top2, [1.0, -1.0])  # topic 1's top pair is (w2, w0 or w1): never together
    p01, p0, p1 = 2 / 4, 2 / 4, 2 / 4
    assert np.isclose(np.log(p01 / (p0 * p1)) / -np.log(p01), 1.0)
    with pytest.raises(InputError, match="words"):
        npmi_coherence(phi[:2], net)


def test_a_damaged_cache_entry_is_parsed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TENFOLD_HOME", str(tmp_path / "home"))
    _site(tmp_path / "html")
    config = DocGraphConfig(vocab_size=10, min_df=2, max_df=1.0, min_tokens=1)
    first = load_python_docs_graph(config, root=tmp_path / "html")
    (entry,) = (tmp_path / "home").rglob("*.npz")
    entry.write_bytes(entry.read_bytes()[:40])  # truncated, as by a full disk
    again = load_python_docs_graph(config, root=tmp_path / "html")
    assert again.edges.tolist() == first.edges.tolist() and again.vocab == first.vocab
