"""Zoo causal LMs with their own byte-level BPE tokenizer, trained here on real English text (the
Python documentation by default, or `--text PATH`):

- `tiny-lm`: LLaMA architecture, ~5M parameters, 128-token windows, 1.4M training tokens.
- `tiny-lm-long`: the same size with 64-dim heads, trained on 2.1x the tokens and to a 1,024-token
  context (most steps at 256 tokens, the last ones at 1,024: the usual short-then-long schedule), for
  methods whose inputs are long (MIND prompts, real KV caches for HSR) or that need a model that is
  less undertrained (pruning).

Reported beside each model: validation perplexity and the perplexity of a unigram model (add-one
smoothed token frequencies of the training split) on the same validation tokens and tokenizer, and
for the long model the perplexity at its full context. Both carry a small chat template (below), so
chat messages work through `apply_chat_template` and OpenAI-compatible servers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tenfold.core.io import Checkpoint
from tenfold.core.progress import progress, say
from tenfold.zoo.registry import ZooSpec, register_model

EOS = "<|endoftext|>"

# Role markers are plain text (the tokenizer has no special tokens for them); the model was never
# tuned on chat, so this only makes chat messages *accepted* (transformers, `transformers serve`),
# it does not make a 5M-parameter LM a good assistant.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] + ':\\n' + message['content'] | trim + '\\n\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyLMConfig:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 4  # grouped-query attention, as in LLaMA-2/3, so GQA code paths are exercised
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 700
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.1
    max_train_chars: int = 12_000_000
    eval_windows: int = 200
    # (seq_len, batch_size, steps) stages after the first; empty = one stage of the fields above
    later_stages: tuple[tuple[int, int, int], ...] = ()
    max_position_embeddings: int = 1024

    @property
    def stages(self) -> tuple[tuple[int, int, int], ...]:
        return ((self.seq_len, self.batch_size, self.steps), *self.later_stages)

    @property
    def total_steps(self) -> int:
        return sum(steps for _, _, steps in self.stages)

    @property
    def context(self) -> int:
        return max(seq for seq, _, _ in self.stages)


SMALL = TinyLMConfig(vocab_size=512, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, seq_len=64, batch_size=8, steps=40,
                     warmup=5, max_train_chars=300_000, eval_windows=20)

# 600 x 16 x 256 + 150 x 4 x 1024 = 3.07M tokens (tiny-lm: 1.43M at 128); head_dim 64 as in LLaMA.
LONG = TinyLMConfig(num_attention_heads=4, num_key_value_heads=2, seq_len=256, batch_size=16, steps=600,
                    later_stages=((1024, 4, 150),), lr=2e-3, warmup=60, eval_windows=64,
                    max_position_embeddings=4096)


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE trained on `texts`, wrapped as a transformers fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, unk_token=EOS,
                                  pad_token=EOS, model_max_length=10**9)
    return tok


def encode_docs(tok, docs: list[str]) -> torch.Tensor:
    """Concatenate documents, each followed by EOS, into one LongTensor of ids."""
    ids: list[int] = []
    for d in docs:
        ids.extend(tok(d, add_special_tokens=False)["input_ids"])
        ids.append(tok.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def unigram_perplexity(train_ids: torch.Tensor, valid_ids: torch.Tensor, vocab_size: int) -> float:
    """Perplexity of add-one smoothed training token frequencies on the validation tokens."""
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + 1.0
    logp = (counts / counts.sum()).log()
    return math.exp(-logp[valid_ids].mean().item())


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, seq_len: int, max_windows: int | None = None, batch: int = 16) -> float:
    """Perplexity over non-overlapping windows of `seq_len` tokens (every token after the first predicted).

    With `max_windows` below the number of windows, that many are taken evenly spaced over the whole
    stream, not from its start, so the number represents the whole validation split.
    """
    n = (len(ids) - 1) // seq_len
    windows = ids[: n * seq_len].view(n, seq_len)
    if max_windows is not None and max_windows < n:
        windows = windows[torch.linspace(0, n - 1, max_windows).round().long()]
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    for i in range(0, len(windows), batch):
        x = windows[i: i + batch].to(device)
        logits = model(input_ids=x).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="sum")
        total += nll.item()
        count += x[:, 1:].numel()
    return math.exp(total / count)


def build_tiny_lm(folder: Path, seed: int = 0, text: str | Path | None = None, config: TinyLMConfig | None = None,
                  small: bool = False) -> dict:
    """Train the tokenizer and the model, save both with save_pretrained; return the build report."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tenfold.data.text import load_corpus

    cfg = config or (SMALL if small else TinyLMConfig())
    corpus = load_corpus(text)
    train_docs, chars = [], 0
    for d in corpus.train:
        if chars >= cfg.max_train_chars:
            break
        train_docs.append(d)
        chars += len(d)
    tok = train_tokenizer(train_docs, cfg.vocab_size)
    train_ids = encode_docs(tok, train_docs)
    valid_ids = encode_docs(tok, corpus.valid)

    torch.manual_seed(seed)
    model_cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=10000.0, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(model_cfg)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    total = cfg.total_steps
    schedule = [(seq, batch) for seq, batch, steps in cfg.stages for _ in range(steps)]  # per step

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10% over all stages
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, total - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    def draw(step: int) -> torch.Tensor:
        seq, batch = schedule[step]
        return torch.randint(0, len(train_ids) - seq - 1, (batch,), generator=gen)

    ckpt = Checkpoint(folder / "train-state")
    state = ckpt.load()
    start_step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start_step = int(state["step"])
    gen = torch.Generator().manual_seed(seed)
    for step in range(start_step):  # replay the sampler so a resumed run draws the same batches
        draw(step)
    model.train()
    losses = []
    bar = progress(range(start_step, total), desc=folder.name.split("-building")[0].lstrip("."), total=total,
                   initial=start_step)
    for step in bar:
        seq = schedule[step][0]
        x = torch.stack([train_ids[s: s + seq] for s in draw(step).tolist()])
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", seq=seq)
        if (step + 1) % 100 == 0:
            say(f"[zoo] lm step {step + 1}/{total} (context {seq}) loss {sum(losses[-50:]) / len(losses[-50:]):.3f}")
            if step + 1 < total:
                ckpt.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1})
    ckpt.clear()
    if (folder / "train-state").exists():
        (folder / "train-state").rmdir()

    val_ppl = perplexity(model, valid_ids, 128, cfg.eval_windows * max(1, cfg.seq_len // 128))
    uni_ppl = unigram_perplexity(train_ids, valid_ids, len(tok))
    tok.chat_template = CHAT_TEMPLATE
    model.generation_config.pad_token_id = tok.eos_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    report = {
        "architecture": "LlamaForCausalLM", "parameters": params, "corpus": corpus.name,
        "train_tokens": int(len(train_ids)), "valid_tokens": int(len(valid_ids)),
        "tokens_seen": sum(seq * batch * steps for seq, batch, steps in cfg.stages),
        "training_context": cfg.context,
        "final_train_loss": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4),
        "valid_perplexity": round(val_ppl, 3), "valid_perplexity_context": 128,
        "unigram_valid_perplexity": round(uni_ppl, 3), "beats_unigram": val_ppl < uni_ppl,
        "chat_template": True, "config": asdict(cfg),
    }
    if cfg.context > 128:
        report[f"valid_perplexity_at_{cfg.context}"] = round(
            perplexity(model, valid_ids, cfg.context, max(1, cfg.eval_windows // 4), batch=2), 3)
    return report


def build_tiny_lm_long(folder: Path, seed: int = 0, text: str | Path | None = None, small: bool = False) -> dict:
    """`tiny-lm-long`: tiny-lm's size, 64-dim heads, trained longer and to a 1,024-token context."""
    return build_tiny_lm(folder, seed=seed, text=text, config=SMALL if small else LONG)


def load_tiny_lm(path: str | Path | None = None, name: str = "tiny-lm"):
    """(model, tokenizer) from a folder, or from the zoo entry `name` (built on first use)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tenfold.zoo.registry import zoo_path

    folder = Path(path) if path is not None else zoo_path(name)
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


register_model(ZooSpec(
    name="tiny-lm", size="~5M params (LLaMA, GQA 8q/4kv heads, 4 layers, d=256, vocab 4096)",
    data="python-docs (Debian python3-doc) or python-topics; --text PATH for your own",
    description="LLaMA-architecture causal LM with a byte-level BPE tokenizer trained here (128-token context).",
    builder=build_tiny_lm,
))
register_model(ZooSpec(
    name="tiny-lm-long", size="~5M params (LLaMA, GQA 4q/2kv heads of 64, 4 layers, d=256, vocab 4096)",
    data="python-docs (Debian python3-doc) or python-topics; --text PATH for your own",
    description="tiny-lm's size trained 2.1x the tokens, to a 1,024-token context (256 then 1,024).",
    builder=build_tiny_lm_long,
))
