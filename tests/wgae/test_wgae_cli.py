"""The CLI verbs end to end on tiny inputs, the tiny reproduce profile, and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tenfold.wgae.cli import app

runner = CliRunner()


def test_sample_fit_topics_evaluate(tmp_path):
    net = tmp_path / "net.npz"
    r = runner.invoke(app, ["sample", "--out", str(net), "--nodes", "80", "--words", "30", "--topics", "4,2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["fit", str(net), "--out", str(tmp_path / "g"), "--model", "gibbs", "--topics", "4,2",
                            "--epochs", "6"])
    assert r.exit_code == 0 and "peak memory" in r.output, r.output
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"w{i}" for i in range(30)))
    r = runner.invoke(app, ["topics", str(tmp_path / "g"), "--vocab", str(vocab), "--top", "3"])
    assert r.exit_code == 0 and "layer 2 (2 topics)" in r.output and "w" in r.output
    r = runner.invoke(app, ["fit", str(net), "--out", str(tmp_path / "w"), "--model", "wgaae", "--topics", "4,2",
                            "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w" / "encoder.safetensors").is_file()
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["evaluate", str(net), "--models", "gae,wgcae", "--topics", "4,2", "--steps", "10",
                            "--out", str(out)])
    assert r.exit_code == 0 and "peak memory" in r.output, r.output
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


def test_sample_dcsbm_and_unwritable_output_is_one_line(tmp_path):
    from tenfold.core.errors import TenfoldError

    r = runner.invoke(app, ["sample", "--generator", "dcsbm", "--out", str(tmp_path / "d.npz"), "--nodes", "60",
                            "--words", "20", "--topics", "4", "--blocks", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sample", "--out", "/proc/x.npz", "--nodes", "30", "--words", "10", "--topics", "2"])
    assert isinstance(r.exception, TenfoldError) and "/proc/x.npz" in str(r.exception)
    r = runner.invoke(app, ["sample", "--generator", "lda", "--out", str(tmp_path / "e.npz")])
    assert isinstance(r.exception, TenfoldError) and "--generator" in str(r.exception)


def test_tenfold_wgae_sample_to_proc_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tenfold.cli", "wgae", "sample", "--out", "/proc/x.npz", "--nodes", "30",
                        "--words", "10", "--topics", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_reproduce_smoke_profile_writes_metrics_claims_and_plots(tmp_path):
    from tenfold.wgae.experiment import PROFILES, reproduce

    result = reproduce("smoke", 0, tmp_path)
    run = result.metrics["dcsbm"]
    assert result.seeds == [0, 1] and set(run["per_seed"]) == {0, 1}
    for seed in (0, 1):
        for name in PROFILES["smoke"]["models"]:
            assert 0 <= run["per_seed"][seed][name]["auc"] <= 1
        assert not any(run["split_overlap"][seed].values())
    assert {c.id for c in result.claims} == {
        "wgcae_auc_above_vgae_dcsbm", "wgaae_auc_above_vgae_dcsbm", "wgcae_topic_match_above_lda_dcsbm",
        "wgaae_topic_match_above_lda_dcsbm", "wgcae_topic_match_above_trivial_dcsbm",
        "wgaae_topic_match_above_trivial_dcsbm"}
    assert all(c.interval is not None and "seeds" in c.evidence for c in result.claims)
    for art in result.artifacts:
        assert (tmp_path / art).is_file()
    assert any("synthetic" in n for n in result.notes) and any("mask_test_edges" in n for n in result.notes)


@pytest.mark.slow
def test_quick_profile_end_to_end(tmp_path):
    from tenfold.wgae.experiment import reproduce

    result = reproduce("quick", 0, tmp_path)
    assert len(result.seeds) == 3 and len(result.claims) >= 6
    for run in result.metrics.values():
        assert all(0.5 < v["auc"] <= 1 for v in run["mean"].values())


@pytest.mark.slow
def test_fit_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    """`tenfold wgae fit` checkpoints every epoch; SIGKILL mid-run, rerun, and the saved model equals an
    uninterrupted run's bit for bit."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tenfold.core.io import load_tensors, read_json
    from tenfold.data.planetoid import save_network
    from tenfold.wgae.gpgbn import sample

    net = tmp_path / "net.npz"
    save_network(sample(150, 60, (6, 2), 40.0, 8.0, seed=1), net)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TENFOLD_DEVICE": "cpu"}

    def cmd(out):
        return [sys.executable, "-m", "tenfold", "--threads", "1", "wgae", "fit", str(net), "--out", str(out),
                "--model", "wgaae", "--topics", "6,2", "--epochs", "40", "--decoder", "exact", "--checkpoint-every", "1"]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(cmd(whole), check=True, env=env, capture_output=True, timeout=900)
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = killed / "checkpoint.json"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if meta.is_file() and read_json(meta)["generation"] >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    done_at_kill = read_json(meta)["generation"]
    assert 3 <= done_at_kill < 40, "the kill should land mid-run"
    assert not (killed / "topics.safetensors").exists()
    subprocess.run(cmd(killed), check=True, env=env, capture_output=True, timeout=900)
    for name in ("topics.safetensors", "encoder.safetensors"):
        a, b = load_tensors(whole / name), load_tensors(killed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name



@pytest.mark.parametrize("option", ["--doc-length", "--degree"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-1"])
def test_sample_refuses_non_finite_or_huge_rates_in_one_line(tmp_path, option, value):
    from tenfold.core.errors import TenfoldError

    r = runner.invoke(app, ["sample", "--out", str(tmp_path / "n.npz"), option, value])
    assert isinstance(r.exception, TenfoldError) and option in str(r.exception), r.output
    assert not (tmp_path / "n.npz").exists()


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--seed", str(2**31)], ["--nodes", "10000000000000"],
                                  ["--words", "10000000000000"], ["--blocks", "0"]])
def test_sample_bounds_are_checked_by_the_parser(tmp_path, args):
    r = runner.invoke(app, ["sample", "--out", str(tmp_path / "n.npz"), *args])
    assert r.exit_code == 2 and not (tmp_path / "n.npz").exists(), r.output


def test_generators_refuse_sizes_that_would_not_fit():
    from tenfold.core.errors import InputError
    from tenfold.data.docgraph import sample_dcsbm_lda
    from tenfold.wgae.gpgbn import sample

    with pytest.raises(InputError, match="nodes x words"):
        sample_dcsbm_lda(100_000, 100_000, topics=4)
    with pytest.raises(InputError, match="tokens"):
        sample(200_000, 50, (4,), doc_length=10_000.0)
    with pytest.raises(InputError, match="finite"):
        sample(50, 20, (4,), mean_degree=float("nan"))


@pytest.mark.parametrize("verb", ["fit", "evaluate"])
@pytest.mark.parametrize("content", [b"", b"\x00\xffgarbage\x13" * 40, b"PK\x03\x04truncated"])
def test_empty_or_corrupted_data_file_is_one_line_naming_it(tmp_path, verb, content):
    from tenfold.core.errors import InputError

    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    extra = ["--out", str(tmp_path / "o")] if verb == "fit" else []
    r = runner.invoke(app, [verb, str(bad), *extra])
    assert isinstance(r.exception, InputError) and str(bad) in str(r.exception), r.output
    assert "\n" not in str(r.exception)


def test_evaluate_gives_the_autoencoders_and_wgae_the_same_width_steps_and_validation_checks(tmp_path, monkeypatch):
    """`wgae evaluate` compares models on one split: each must get the same hidden width, the same number of
    Adam steps and validation checks at the same step interval (it gave VGAE 64 hidden units and WGAE 128,
    and checked VGAE every 5 steps but WGAE every 25)."""
    import numpy as np

    import tenfold.wgae.baselines as baselines
    import tenfold.wgae.model as model
    from tenfold.wgae.evaluate import LinkModel

    seen = {}

    def dummy(name):
        return LinkModel(name, np.zeros((80, 2)), lambda pairs: np.arange(pairs.shape[1], dtype=float))

    def fake_autoencoder(kind, net, split, seed=0, steps=200, lr=0.01, hidden=64, out=16, eval_every=5):
        seen[kind] = {"hidden": hidden, "steps": steps, "check_every_steps": eval_every}
        return dummy(kind)

    def fake_wgae(net, split, config, seed=0, device=None):
        seen["wgcae"] = {"hidden": config.hidden, "steps": config.epochs * config.steps_per_epoch,
                         "check_every_steps": config.eval_every * config.steps_per_epoch}
        return dummy("wgcae")

    monkeypatch.setattr(baselines, "fit_autoencoder", fake_autoencoder)
    monkeypatch.setattr(model, "fit_wgae", fake_wgae)
    net = tmp_path / "net.npz"
    assert runner.invoke(app, ["sample", "--out", str(net), "--nodes", "80", "--words", "30", "--topics", "4,2"]).exit_code == 0
    r = runner.invoke(app, ["evaluate", str(net), "--models", "vgae,wgcae", "--topics", "4,2", "--steps", "32"])
    assert r.exit_code == 0, r.output
    assert seen["vgae"] == seen["wgcae"], seen
