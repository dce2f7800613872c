"""The CLI verbs end to end on tiny inputs, the tiny reproduce profile, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tenfold.wgae.cli import app

runner = CliRunner()


def test_sample_fit_topics_evaluate(tmp_path):
    net = tmp_path / "net.npz"
    r = runner.invoke(app, ["sample", "--out", str(net), "--nodes", "80", "--words", "30", "--topics", "4,2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["fit", str(net), "--out", str(tmp_path / "g"), "--model", "gibbs", "--topics", "4,2",
                            "--epochs", "6"])
    assert r.exit_code == 0, r.output
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"w{i}" for i in range(30)))
    r = runner.invoke(app, ["topics", str(tmp_path / "g"), "--vocab", str(vocab), "--top", "3"])
    assert r.exit_code == 0 and "layer 2 (2 topics)" in r.output and "w" in r.output
    r = runner.invoke(app, ["fit", str(net), "--out", str(tmp_path / "w"), "--model", "wgaae", "--topics", "4,2",
                            "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w" / "encoder.safetensors").is_file()
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["evaluate", str(net), "--models", "gae,wgcae", "--topics", "4,2", "--epochs", "2",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"gae", "wgcae"} and 0 <= metrics["wgcae"]["auc"] <= 1


def test_cli_bad_inputs_raise_tenfold_errors(tmp_path):
    from tenfold.core.errors import TenfoldError

    r = runner.invoke(app, ["fit", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, TenfoldError) and "does not exist" in str(r.exception)
    r = runner.invoke(app, ["sample", "--out", str(tmp_path / "n.npz"), "--topics", "a,b"])
    assert isinstance(r.exception, TenfoldError) and "--topics" in str(r.exception)
    r = runner.invoke(app, ["topics", str(tmp_path)])
    assert isinstance(r.exception, TenfoldError) and "wgae fit" in str(r.exception)


def test_reproduce_tiny_profile_writes_metrics_claims_and_plots(tmp_path):
    from tenfold.wgae.experiment import MODELS, reproduce

    result = reproduce("tiny", 0, tmp_path)
    assert set(result.metrics) == {*MODELS, "topic_match", "topic_match_random"}
    for name in MODELS:
        assert set(result.metrics[name]) == {"auc", "ap", "acc", "nmi"}
        assert np.isfinite(list(result.metrics[name].values())).all()
    assert [c.id for c in result.claims] == ["wgcae_auc_above_vgae", "wgaae_auc_above_vgae", "topics_beat_chance"]
    for art in result.artifacts:
        assert (tmp_path / art).is_file()
    assert any("synthetic" in n for n in result.notes)


@pytest.mark.slow
def test_quick_profile_end_to_end(tmp_path):
    from tenfold.wgae.experiment import reproduce

    result = reproduce("quick", 0, tmp_path)
    assert result.metrics["topic_match"] > result.metrics["topic_match_random"]
    assert all(0.5 < result.metrics[m]["auc"] <= 1 for m in ("vgae", "wgcae", "wgaae", "gpgbn-gibbs"))
