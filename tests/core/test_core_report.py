"""The report gathers every */result.json into index.md and a self-contained index.html."""

from __future__ import annotations

import pytest

from tenfold.core.errors import SchemaError
from tenfold.core.plots import plt, save_figure
from tenfold.core.report import Expected, build_report
from tenfold.core.results import Result


def _write(folder, name, held: bool, with_plot: bool = False, schema1: bool = False):
    r = Result(method=name, kind="reproduce", paper={"title": f"paper {name}", "arxiv": "1234.56789"},
               metrics={"acc": {"rope": {"1": {"3": 0.9, "6": 0.5}, "2": {"3": 0.95, "6": 0.6}},
                                "nope": {"1": {"3": 0.8, "6": 0.4}}},
                        "curve": [{"macs": 0.5, "fid": 12.5}, {"macs": 0.3, "fid": 18.0}], "scalar": 3.0},
               wall_seconds=1.5, seeds=[0, 1, 2])
    r.claim("c1", "ours better", 1.0 if held else 3.0, 2.0, "base", "lower",
            interval=(-1.4, -0.6) if held else (0.5, 1.5), evidence="paired bootstrap over 40 windows x 3 seeds")
    r.claim("c2", "a gap inside the noise", 1.9, 2.0, "base", "lower", interval=(-0.3, 0.1), evidence="paired bootstrap")
    r.claim("c3", "fewer calls", 10, 200, "recompute", "lower", exact=True)
    if schema1:
        d = r.to_dict()
        d["schema"] = "tenfold.result/1"
        d["claims"] = [{**{k: c[k] for k in ("id", "statement", "ours", "reference", "better")},
                        "holds": c["ours"] < c["reference"]} for c in d["claims"]]
        import json

        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "result.json").write_text(json.dumps(d))
        return
    if with_plot:
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4])
        r.artifacts.append(save_figure(fig, folder / name / "curve.png"))
    r.write(folder / name)


def test_report_counts_three_verdicts_and_shows_intervals_for_mixed_schemas(tmp_path):
    _write(tmp_path, "alpha", held=True, with_plot=True)
    _write(tmp_path, "beta", held=False)
    _write(tmp_path, "old", held=True, schema1=True)
    expected = [Expected("alpha", "paper alpha"), Expected("beta", "paper beta"), Expected("old", "paper old"),
                Expected("gamma", "paper gamma", implemented=False)]
    md, page = build_report(tmp_path, expected)
    text = md.read_text()
    assert "| alpha | paper alpha | ok | 2 | 1 | 0 | 1.5 |" in text
    assert "| beta | paper beta | ok | 1 | 1 | 1 | 1.5 |" in text
    assert "| old | paper old | ok | 3 | 0 | 0 | 1.5 |" in text  # /1: point comparisons
    assert "not implemented yet" in text
    assert "| -1 [-1.4, -0.6] | lower | holds | paired bootstrap over 40 windows x 3 seeds |" in text
    assert "| -0.1 [-0.3, +0.1] | lower | inconclusive |" in text
    assert "| -190 (exact) | lower | holds | exact |" in text
    assert "n/a (schema /1)" in text and "seeds 0, 1, 2" in text
    # nested metrics become tables, never dict text in a cell
    assert "### acc / rope" in text and "|  | 3 | 6 |" in text and "| 2 | 0.95 | 0.6 |" in text
    assert "### curve" in text and "| macs | fid |" in text and "{" not in text.split("### metrics")[1]
    assert "![curve.png](alpha/curve.png)" in text
    html = page.read_text()
    assert "data:image/png;base64," in html  # self-contained
    assert html.count("<h2") == 4
    assert 'class="holds"' in html and 'class="inconclusive"' in html and 'class="fails"' in html


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
