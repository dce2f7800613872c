"""The Hugging Face drop-in decodes the same tokens as dense ReLU attention; the CLI validates."""

from __future__ import annotations

import copy
import json

import torch
from typer.testing import CliRunner

from tenfold.hsr.cache import DENSE, HSR, touched_fraction, use_relu_attention


def test_hf_dropin_decodes_the_same_tokens_as_dense_relu(tiny_lm):
    model, tok = tiny_lm
    model = copy.deepcopy(model).eval()
    prompt = tok("def f(x):\n    return", return_tensors="pt")["input_ids"]
    outs = {}
    for mode in (DENSE, HSR):
        use_relu_attention(model, mode, alpha=2, bias=0.05)
        with torch.no_grad():
            outs[mode] = model.generate(prompt, max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    assert torch.equal(outs[DENSE], outs[HSR])
    assert 0.0 <= touched_fraction() <= 1.0


def test_cli_validate_reports_exact_sets():
    from tenfold.hsr.cli import app

    res = CliRunner().invoke(app, ["validate", "--n", "3000", "--d", "8", "--queries", "4"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["queries_with_wrong_set"] == 0 and report["relu_max_rel_err"] < 1e-5
