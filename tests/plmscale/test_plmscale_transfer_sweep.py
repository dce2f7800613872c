"""The tiny CLM -> MLM transfer experiment: causal backbone, weight carry-over, curves and D_t."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plm_sequences import SEQS

from tenfold.data.fasta import load_fasta
from tenfold.plmscale.sweep import AminoAcidTokenizer
from tenfold.plmscale.transfer import effectively_transferred_tokens
from tenfold.plmscale.transfer_sweep import TransferConfig, build_esm, run_transfer


def test_causal_esm_ignores_future_tokens_and_bidirectional_does_not():
    """Property: with is_decoder the logits at position t depend only on tokens <= t."""
    tok = AminoAcidTokenizer()
    torch.manual_seed(0)
    causal = build_esm(16, 1, tok, 16, causal=True).eval()
    bidir = build_esm(16, 1, tok, 16, causal=False).eval()
    bidir.load_state_dict(causal.state_dict())
    x = torch.tensor([tok.encode("MKTAYIAKQRQISF")])
    y = x.clone()
    y[0, 10:] = tok.index["W"]  # change the future of position 9
    with torch.no_grad():
        assert torch.allclose(causal(input_ids=x).logits[0, :10], causal(input_ids=y).logits[0, :10], atol=1e-6)
        assert not torch.allclose(bidir(input_ids=x).logits[0, :10], bidir(input_ids=y).logits[0, :10], atol=1e-4)


def test_transfer_experiment_runs_and_reports_d_t(tmp_path):
    path = tmp_path / "tiny.fasta"
    path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(SEQS)))
    proteins = load_fasta(path, valid_every=4)
    cfg = TransferConfig(shapes=((8, 1), (16, 1)), clm_tokens=(320, 640), mlm_tokens=1280, checkpoints=4, seq_len=16,
                         batch_size=4, valid_windows=4)
    out = run_transfer(proteins, cfg)
    assert [(r["hidden"], r["clm_tokens"]) for r in out["runs"]] == [(8, 320), (8, 640), (16, 320), (16, 640)]
    for r in out["runs"]:
        assert len(r["tokens"]) == len(r["scratch_loss"]) == len(r["transferred_loss"]) >= 3
        assert np.all(np.diff(r["tokens"]) > 0) and np.all(np.isfinite(r["transferred_loss"]))
        expected = effectively_transferred_tokens(r["tokens"], r["transferred_loss"], r["tokens"], r["scratch_loss"])
        np.testing.assert_allclose(r["transferred_tokens"], expected)
    same = [r["scratch_loss"] for r in out["runs"] if r["hidden"] == 8]
    assert same[0] == same[1]  # one scratch curve per size, shared by its CLM amounts
    assert 0.0 <= out["positive_fraction"] <= 1.0 and np.array(out["points"]).shape == (4 * 4, 4)
    assert out["law"] is None or {"k", "alpha", "beta", "gamma"} <= set(out["law"])


def test_transfer_experiment_rejects_empty_config(tmp_path):
    from tenfold.core.errors import InputError

    with pytest.raises(InputError, match="at least one shape"):
        run_transfer(None, TransferConfig(shapes=()))
    with pytest.raises(InputError, match="CLM amount"):
        run_transfer(None, TransferConfig(clm_tokens=()))


def _curves(shift_of_tokens):
    """Scratch L = 4 D^-0.05; the transferred run reaches at D_f the scratch loss at D_f + shift(D_f, N)."""
    d = np.logspace(4, 7, 12)
    runs = []
    for n in (1e3, 4e3):
        runs.append({"params": n, "tokens": d.tolist(), "scratch_loss": (4 * d**-0.05).tolist(),
                     "transferred_loss": (4 * (d + shift_of_tokens(d, n)) ** -0.05).tolist()})
    return runs


def test_summary_recovers_a_known_transfer_law():
    from tenfold.plmscale.transfer_sweep import summarise_transfer

    out = summarise_transfer(_curves(lambda d, n: 3.0 * d**0.5 * n**0.4))
    assert out["positive_fraction"] == 1.0
    assert (out["law"]["k"], out["law"]["alpha"], out["law"]["beta"]) == pytest.approx((3.0, 0.5, 0.4), rel=1e-3)


def test_summary_refuses_a_law_when_transfer_mostly_hurts():
    from tenfold.plmscale.transfer_sweep import summarise_transfer

    # a gain only at the first 4 of 12 checkpoints, a loss (negative D_t) afterwards
    out = summarise_transfer(_curves(lambda d, n: np.where(d < 1e5, 0.5 * d, -0.5 * d)))
    assert out["positive_fraction"] == pytest.approx(1 / 3)
    assert "law_refused" in out
    assert out["law"] is None and "checkpoints have D_t > 0" in out["law_error"]
    assert out["median_d_t_over_d_f"] == pytest.approx(-0.5, rel=1e-6)


def test_summary_refuses_a_law_whose_gain_grows_without_bound_as_mlm_tokens_go_to_zero():
    from tenfold.plmscale.transfer_sweep import summarise_transfer

    out = summarise_transfer(_curves(lambda d, n: 1e6 * d**-0.5 * n**0.1))  # a gain at every checkpoint, shrinking
    assert out["positive_fraction"] == 1.0 and out["law_refused"]["alpha"] == pytest.approx(-0.5, rel=1e-3)
    assert out["law"] is None and "alpha = -0.50 <= 0" in out["law_error"]
