"""The tiny CLM -> MLM transfer experiment: causal backbone, weight carry-over, curves and D_t."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tenfold.data.fasta import load_fasta
from tenfold.plmscale.sweep import AminoAcidTokenizer
from tenfold.plmscale.transfer import effectively_transferred_tokens
from tenfold.plmscale.transfer_sweep import TransferConfig, build_esm, run_transfer

SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MSEQNNTEMTFQIQRIYTKDIS", "GSHMLEDPVDAFQE", "MNIFEMLRIDEGLRLKIYKDTEG"] * 6


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
    cfg = TransferConfig(shapes=((8, 1), (16, 1)), clm_tokens=640, mlm_tokens=1280, checkpoints=4, seq_len=16,
                         batch_size=4, valid_windows=4)
    out = run_transfer(proteins, cfg)
    assert [r["hidden"] for r in out["runs"]] == [8, 16]
    for r in out["runs"]:
        assert len(r["tokens"]) == len(r["scratch_loss"]) == len(r["transferred_loss"]) >= 3
        assert np.all(np.diff(r["tokens"]) > 0) and np.all(np.isfinite(r["transferred_loss"]))
        expected = effectively_transferred_tokens(r["tokens"], r["transferred_loss"], r["tokens"], r["scratch_loss"])
        np.testing.assert_allclose(r["transferred_tokens"], expected)
    assert 0.0 <= out["positive_fraction"] <= 1.0
    assert out["law"] is None or {"k", "alpha", "beta"} <= set(out["law"])


def test_transfer_experiment_rejects_empty_config(tmp_path):
    from tenfold.core.errors import InputError

    with pytest.raises(InputError, match="at least one shape"):
        run_transfer(None, TransferConfig(shapes=()))
