"""Real-key dumps: post-RoPE keys equal an independent recomputation, chunking does not change them, the
CLI refuses bad input with one line, and every method runs on a dump."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tenfold.core.errors import InputError
from tenfold.hsr.cli import app
from tenfold.hsr.keys import check_dump, dump_keys, participation_ratio


@pytest.fixture(scope="module")
def ids(tiny_lm):
    return torch.arange(5, 5 + 200) % tiny_lm[0].config.vocab_size


def test_dumped_keys_are_post_rope_layer0_keys(tiny_lm, ids):
    """Independent reference: embed, RMS-norm, k_proj, then RoPE at each position, by hand."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    model = tiny_lm[0].eval()
    dump = dump_keys(model, ids, chunk=64)
    with torch.no_grad():
        attn = model.model.layers[0].self_attn
        h = model.model.layers[0].input_layernorm(model.model.embed_tokens(ids[None]))
        d = attn.head_dim
        k = attn.k_proj(h).view(1, len(ids), -1, d).transpose(1, 2)
        q = attn.q_proj(h).view(1, len(ids), -1, d).transpose(1, 2)
        cos, sin = model.model.rotary_emb(h, torch.arange(len(ids))[None])
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
    torch.testing.assert_close(dump.keys[0], k[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dump.queries[0], q[0], rtol=1e-4, atol=1e-5)
    assert dump.groups == model.config.num_attention_heads // model.config.num_key_value_heads


def test_chunked_dump_equals_one_pass(tiny_lm, ids):
    model = tiny_lm[0].eval()
    a, b = dump_keys(model, ids, chunk=37), dump_keys(model, ids, chunk=1000)
    for x, y in zip(a.tensors().values(), b.tensors().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_participation_ratio_against_closed_forms():
    g = torch.Generator().manual_seed(0)
    iso = torch.randn(20000, 8, generator=g, dtype=torch.float64)
    assert participation_ratio(iso) == pytest.approx(8, rel=0.03)
    line = torch.randn(500, 1, generator=g, dtype=torch.float64) * torch.randn(1, 8, generator=g, dtype=torch.float64)
    assert participation_ratio(line) == pytest.approx(1, rel=1e-6)
    two = iso[:, :2] * torch.tensor([1.0, 2.0], dtype=torch.float64)  # variances 1 and 4: (1+4)^2/(1+16)
    assert participation_ratio(two) == pytest.approx(25 / 17, rel=0.03)


@pytest.mark.parametrize("case", ["missing", "shape", "dtype", "heads"])
def test_mismatched_dumps_are_refused(case):
    q, k = torch.zeros(2, 4, 10, 8), torch.zeros(2, 2, 10, 8)
    t = {"queries": q, "keys": k, "values": k.clone()}
    if case == "missing":
        del t["values"]
    elif case == "shape":
        t["values"] = torch.zeros(2, 2, 9, 8)
    elif case == "dtype":
        t["values"] = t["values"].half()
    else:
        t["queries"] = torch.zeros(2, 3, 10, 8)
    with pytest.raises(InputError):
        check_dump(t)


def test_cli_dump_then_compare_runs_every_method(tiny_lm_dir, tmp_path):
    out = tmp_path / "keys.safetensors"
    res = CliRunner().invoke(app, ["dump-keys", "--model", str(tiny_lm_dir), "--text", "python-topics", "--tokens", "300",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["compare", str(out), "--ns", "128,256", "--queries", "4", "--out", str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    table = json.loads((tmp_path / "t.json").read_text())
    assert table["missed_keys_total"] == 0 and table["max_rel_err"] < 1e-5
    assert {s["n"] for s in table["summary"]} == {128, 256}
    res = CliRunner().invoke(app, ["validate", "--keys", str(out), "--queries", "4"])
    assert res.exit_code == 0, res.output


def test_cli_refuses_bad_input_in_one_line(tiny_lm_dir, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16)).save_pretrained(gpt2)
    res = CliRunner().invoke(app, ["dump-keys", "--model", str(gpt2), "--tokens", "10", "--out", str(tmp_path / "k.st")])
    assert res.exit_code != 0 and "llama" in str(res.exception) and "gpt2" in str(res.exception)
    short = tmp_path / "short.txt"
    short.write_text("def f(): pass\n")
    res = CliRunner().invoke(app, ["dump-keys", "--model", str(tiny_lm_dir), "--text", str(short), "--tokens", "5000",
                                   "--out", str(tmp_path / "k.st")])
    assert res.exit_code != 0 and "fewer than the 5,000" in str(res.exception)
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({"queries": torch.zeros(1, 2, 10, 4), "keys": torch.zeros(1, 2, 10, 4), "values": torch.zeros(1, 2, 9, 4)},
              str(bad))
    res = CliRunner().invoke(app, ["compare", str(bad)])
    assert res.exit_code != 0 and "mismatched shapes" in str(res.exception)


def test_cli_validate_refuses_oversized_random_keys_and_seeds_before_any_work():
    res = CliRunner().invoke(app, ["validate", "--n", "100000000", "--d", "4096"])
    assert res.exit_code != 0 and "key coordinates" in str(res.exception)
    res = CliRunner().invoke(app, ["validate", "--seed", "10000000000000"])
    assert res.exit_code == 2 and "--seed" in res.output
    res = CliRunner().invoke(app, ["validate", "--n", "300", "--d", "4", "--queries", "3", "--seed", "5"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert all(report[k]["missed_keys"] == 0 for k in ("hsr_tree", "quest_blocks", "lowrank_blocks", "lowrank_keys"))
