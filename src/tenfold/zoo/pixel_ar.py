"""`pixel-ar`: a class-conditional decoder-only image generator over the digits' grey-level tokens.

An image is the sequence [class token, p_0, ..., p_63]: the class token (ids 17..26) opens the
sequence and acts as BOS, then the 64 pixels of the 8x8 digit in raster order, each one of 17 grey
levels (ids 0..16). The model is a stock transformers `LlamaForCausalLM` (multi-head attention,
4 layers, d=64), so the pruning code that works on LLaMA works on it unchanged: the small-scale
analogue of the paper's LlamaGen experiments. Trained here on scikit-learn's digits (80/20 split).

Reported: held-out bits/dim (NLL of the 64 pixel tokens in bits, per pixel) and the sample score
(accuracy of the digit classifier on class-conditional samples).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tenfold.core.progress import progress
from tenfold.zoo.registry import ZooSpec, register_model

LEVELS = 17
CLASSES = 10
PIXELS = 64
VOCAB = LEVELS + CLASSES


@dataclass(frozen=True)
class PixelARConfig:
    hidden_size: int = 64
    intermediate_size: int = 172
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.05


SMALL = PixelARConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, steps=30, batch_size=16)


def encode(levels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(n, 1, 8, 8) grey levels + (n,) labels -> (n, 65) token ids."""
    return torch.cat([(labels + LEVELS).unsqueeze(1), levels.reshape(len(levels), -1)], dim=1).long()


def _nll_terms(model, ids: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=ids, use_cache=False).logits[:, :-1, :LEVELS].float()  # pixels only
    return torch.nn.functional.cross_entropy(logits.reshape(-1, LEVELS), ids[:, 1:].reshape(-1), reduction="none")


@torch.no_grad()
def image_bits(model, ids: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Held-out negative log-likelihood of each image's pixels, in bits per pixel: (n,) float64."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for i in range(0, len(ids), batch):
        terms = _nll_terms(model, ids[i: i + batch].to(device)).view(-1, PIXELS)
        out.append(terms.double().mean(dim=1).cpu() / math.log(2))
    return torch.cat(out)


def bits_per_dim(model, ids: torch.Tensor, batch: int = 128) -> float:
    """Held-out negative log-likelihood of the pixels, in bits per pixel."""
    return float(image_bits(model, ids, batch).mean())


@torch.no_grad()
def sample(model, labels: torch.Tensor, generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
    """Class-conditional samples: (n,) labels -> (n, 1, 8, 8) grey levels (KV-cached, pixels only)."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    model.eval()
    ids = (labels + LEVELS).unsqueeze(1).to(device)
    cache = DynamicCache(config=model.config)
    out = []
    step_in = ids
    for _ in range(PIXELS):
        logits = model(input_ids=step_in, cache=cache, use_cache=True).logits[:, -1, :LEVELS].float()
        probs = torch.softmax(logits / temperature, dim=-1).cpu()
        nxt = torch.multinomial(probs, 1, generator=generator)
        out.append(nxt)
        step_in = nxt.to(device)
    return torch.cat(out, dim=1).view(-1, 1, 8, 8)


@torch.no_grad()
def sample_accuracy(model, classifier, per_class: int = 20, seed: int = 0) -> float:
    """Accuracy of `classifier` on `per_class` samples of every class (the classifier-based sample score)."""
    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    levels = sample(model, labels, torch.Generator().manual_seed(seed))
    pred = classifier(levels.float() / (LEVELS - 1)).argmax(-1)
    return (pred == labels).float().mean().item()


def split_ids(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train ids, validation ids) of the digits, the zoo's fixed 80/20 split."""
    from tenfold.data.images import load_digits

    train, valid = load_digits().split(0.2, seed=seed)
    return encode(train.levels, train.labels), encode(valid.levels, valid.labels)


def build_pixel_ar(folder: Path, seed: int = 0, config: PixelARConfig | None = None, small: bool = False) -> dict:
    """Train the model and save it with save_pretrained; return the build report."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = config or (SMALL if small else PixelARConfig())
    train_ids, valid_ids = split_ids(0)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads, max_position_embeddings=128, tie_word_embeddings=False,
        bos_token_id=LEVELS, eos_token_id=LEVELS, pad_token_id=0))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in progress(range(cfg.steps), desc="pixel-ar"):
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / cfg.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        x = train_ids[torch.randint(0, len(train_ids), (cfg.batch_size,), generator=gen)]
        loss = _nll_terms(model, x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    report = {"architecture": "LlamaForCausalLM", "parameters": sum(p.numel() for p in model.parameters()),
              "data": "digits (scikit-learn), 80/20 split seed 0", "tokens": "class token + 64 pixels, 17 levels",
              "valid_bits_per_dim": round(bits_per_dim(model, valid_ids), 4),
              "uniform_bits_per_dim": round(math.log2(LEVELS), 4), "config": asdict(cfg)}
    model.save_pretrained(folder, safe_serialization=True)
    return report


def load_pixel_ar(path: str | Path | None = None):
    """The trained model in eval mode (built on first use when no path is given)."""
    from transformers import LlamaForCausalLM

    from tenfold.zoo.registry import zoo_path

    folder = Path(path) if path is not None else zoo_path("pixel-ar")
    return LlamaForCausalLM.from_pretrained(folder).eval()


register_model(ZooSpec(
    name="pixel-ar", size="~0.2M params (LLaMA, 4 layers, d=64, 4 heads, 65-token sequences)",
    data="digits (scikit-learn), 17 grey levels",
    description="class-conditional pixel-token image generator; the image AR model pruned by `prune`.",
    builder=build_pixel_ar,
))
