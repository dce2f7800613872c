"""Zoo entries build once into a save_pretrained folder, atomically, and are reused after."""

from __future__ import annotations

import math

import pytest
import torch

from tenfold.core.errors import UnknownNameError
from tenfold.zoo.registry import ZooSpec, all_models, get_model
from tenfold.zoo.tiny_lm import perplexity, unigram_perplexity


def test_registry_lists_tiny_lm_and_rejects_unknown_names():
    assert "tiny-lm" in [m.name for m in all_models()]
    with pytest.raises(UnknownNameError, match="tenfold zoo list"):
        get_model("nope")


def test_build_is_cached_and_a_failed_build_leaves_nothing(tmp_path):
    calls = []

    def builder(folder, seed=0, fail=False):
        calls.append(seed)
        (folder / "weights.bin").write_text("w")
        if fail:
            raise RuntimeError("crash mid-build")
        return {"ok": True}

    spec = ZooSpec("test-entry", "1", "none", "test", builder)
    with pytest.raises(RuntimeError):
        spec.build(fail=True)
    assert not spec.is_built() and not spec.path().exists()
    first = spec.build(seed=1)
    assert first["cached"] is False and spec.is_built() and calls == [0, 1]
    again = spec.build()
    assert again["cached"] is True and calls == [0, 1]


def test_small_tiny_lm_beats_the_unigram_model_and_reloads(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer


    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert list(tiny_lm_dir.glob("*.safetensors"))
    ids = tok("def function(x):\n    return x", return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == "def function(x):\n    return x"  # byte-level BPE is lossless
    out = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 5


def test_unigram_perplexity_matches_a_hand_count():
    train = torch.tensor([0, 0, 1])  # counts +1: [3, 2, 1] / 6
    valid = torch.tensor([0, 2])
    expected = math.exp(-(math.log(3 / 6) + math.log(1 / 6)) / 2)
    assert unigram_perplexity(train, valid, 3) == pytest.approx(expected)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            return type("O", (), {"logits": torch.zeros(*input_ids.shape, 7)})()

    ids = torch.randint(0, 7, (200,))
    assert perplexity(Uniform(), ids, seq_len=10) == pytest.approx(7.0)


def test_zoo_lms_carry_a_chat_template_that_renders_roles_in_order(tiny_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Summarise. "}],
        tokenize=False, add_generation_prompt=True)
    assert text == "### system:\nBe brief.\n\n### user:\nSummarise.\n\n### assistant:\n"
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert tok.decode(ids) == "### user:\nhi\n\n### assistant:\n"


def test_long_lm_schedule_ends_at_its_full_context_and_counts_every_stage():
    from tenfold.zoo.tiny_lm import LONG, TinyLMConfig

    assert LONG.context == 1024 and LONG.stages[-1][0] == 1024
    assert LONG.total_steps == sum(steps for _, _, steps in LONG.stages)
    assert LONG.hidden_size // LONG.num_attention_heads == 64
    one = TinyLMConfig()
    assert one.stages == ((128, 16, 700),) and one.context == 128
    assert "tiny-lm-long" in [m.name for m in all_models()]


def test_perplexity_with_fewer_windows_spreads_them_over_the_whole_stream():
    class Memorised(torch.nn.Module):  # predicts token t+1 perfectly only in the stream's first half
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            logits = torch.zeros(*input_ids.shape, 4)
            first_half = (input_ids < 2).all(dim=1)
            nxt = (input_ids + 1) % 2
            logits[first_half] = 50 * torch.nn.functional.one_hot(nxt[first_half], 4).float()
            return type("O", (), {"logits": logits})()

    ids = torch.cat([torch.arange(400) % 2, 2 + torch.arange(400) % 2])
    front_only = perplexity(Memorised(), ids[:400], seq_len=10, max_windows=10)
    spread = perplexity(Memorised(), ids, seq_len=10, max_windows=10)
    assert front_only == pytest.approx(1.0, abs=1e-3)
    assert spread > 1.5  # half of the spread windows come from the unmemorised half
