"""The report gathers every */result.json into index.md and a self-contained index.html."""

from __future__ import annotations

import pytest

from tenfold.core.errors import SchemaError
from tenfold.core.plots import plt, save_figure
from tenfold.core.report import Expected, build_report
from tenfold.core.results import Result


def _write(folder, name, held: bool, with_plot: bool = False):
    r = Result(method=name, kind="reproduce", paper={"title": f"paper {name}", "arxiv": "1234.56789"},
               metrics={"acc": {"rope": {"1": 0.9, "2": 0.5}}, "scalar": 3.0}, wall_seconds=1.5)
    r.claim("c1", "ours better", 1.0 if held else 3.0, 2.0, "base", "lower")
    if with_plot:
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4])
        r.artifacts.append(save_figure(fig, folder / name / "curve.png"))
    r.write(folder / name)


def test_report_lists_results_and_unimplemented_methods(tmp_path):
    _write(tmp_path, "alpha", held=True, with_plot=True)
    _write(tmp_path, "beta", held=False)
    expected = [Expected("alpha", "paper alpha"), Expected("beta", "paper beta"),
                Expected("gamma", "paper gamma", implemented=False)]
    md, page = build_report(tmp_path, expected)
    text = md.read_text()
    assert "| alpha | paper alpha | ok | 1 / 1 | 1.5 |" in text
    assert "| beta | paper beta | ok | 0 / 1 | 1.5 |" in text
    assert "not implemented yet" in text
    assert "does not hold" in text
    assert "![curve.png](alpha/curve.png)" in text
    html = page.read_text()
    assert "data:image/png;base64," in html  # self-contained
    assert html.count("<h2") == 3


def test_corrupted_result_stops_the_report_naming_the_file(tmp_path):
    _write(tmp_path, "alpha", held=True)
    bad = tmp_path / "broken" / "result.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(SchemaError) as err:
        build_report(tmp_path)
    assert str(bad) in str(err.value)
    assert not (tmp_path / "index.md").exists()


def test_zoo_builds_are_reported_apart_from_method_times(tmp_path):
    import json

    _write(tmp_path, "alpha", held=True)
    (tmp_path / "zoo-builds.json").write_text(json.dumps({"tiny-lm": {"build_seconds": 600.0, "valid_perplexity": 20.5}}))
    md, page = build_report(tmp_path)
    text = md.read_text()
    assert "one-time cost" in text and "| tiny-lm | 600 |" in text and "valid_perplexity: 20.5" in text
