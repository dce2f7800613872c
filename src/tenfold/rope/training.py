"""Training the formula transformers (answer-only or chain-of-thought targets) and measuring accuracy."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tenfold.core.errors import check
from tenfold.core.progress import progress
from tenfold.rope.model import FormulaTransformer
from tenfold.rope.tasks import Instance
from tenfold.rope.vocab import Vocab

IGNORE = -100


@dataclass(frozen=True)
class TrainConfig:
    """AdamW on the cross-entropy of the target tokens after '=' (our tiny budget; the paper trains nothing)."""

    steps: int = 300
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    cot: bool = False  # targets: the chain of intermediate values (ending with the answer) instead of the answer
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.steps >= 1 and self.batch >= 1, f"steps and batch must be >= 1, got {self.steps}, {self.batch}")


def targets(inst: Instance, cot: bool) -> list[int]:
    return list(inst.cot) if cot else [inst.answer]


def encode_batch(batch: list[Instance], vocab: Vocab, cot: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs (B, S) and labels (B, S): label = next token on and after '=', IGNORE elsewhere."""
    seqs, starts = [], []
    for inst in batch:
        seq = vocab.ids(inst.tokens) + [vocab.ids(["="])[0]] + [vocab.value_id(v) for v in targets(inst, cot)]
        seqs.append(seq)
        starts.append(len(inst.tokens))  # index of '='
    S = max(len(s) for s in seqs) - 1
    ids = torch.full((len(batch), S), vocab.pad, dtype=torch.long)
    labels = torch.full((len(batch), S), IGNORE, dtype=torch.long)
    for b, (seq, start) in enumerate(zip(seqs, starts, strict=True)):
        ids[b, : len(seq) - 1] = torch.tensor(seq[:-1])
        labels[b, start : len(seq) - 1] = torch.tensor(seq[start + 1 :])
    return ids, labels


def train_model(model: FormulaTransformer, data: list[Instance], vocab: Vocab, cfg: TrainConfig = TrainConfig(),
                loops: Callable[[list[Instance]], int] | None = None, desc: str = "train") -> list[float]:
    """Fit `model` on `data`; `loops(batch)` gives the looped model's loop count for a batch."""
    check(len(data) >= 1, "no training instances")
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    model.train()
    losses = []
    for _ in progress(range(cfg.steps), desc=desc):
        batch = rng.sample(data, min(cfg.batch, len(data)))
        ids, labels = encode_batch(batch, vocab, cfg.cot)
        device = model.embed.weight.device
        logits = model(ids.to(device), loops(batch) if loops else None)
        labels = labels.to(device)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: FormulaTransformer, data: list[Instance], vocab: Vocab, cot: bool = False,
             loops: int | None = None, dtype: torch.dtype = torch.float32, batch: int = 256) -> float:
    """Fraction of instances whose final answer is right (greedy decoding of the chain when `cot`)."""
    check(len(data) >= 1, "no test instances")
    model.eval()
    run = model.to(dtype)
    correct = 0
    try:
        for i in range(0, len(data), batch):
            chunk = data[i : i + batch]
            ids = encode_batch(chunk, vocab, cot)[0].to(model.embed.weight.device)
            starts = [len(x.tokens) for x in chunk]
            lengths = [len(targets(x, cot)) for x in chunk]
            for step in range(max(lengths)):
                pred = run(ids, loops).float().argmax(-1)  # (B, S): the full recompute keeps positions exact
                for b, start in enumerate(starts):
                    if step < lengths[b] and start + step + 1 < ids.shape[1]:
                        ids[b, start + step + 1] = pred[b, start + step]  # feed back the generated value
                    if step == lengths[b] - 1:
                        correct += int(pred[b, start + step].item() == vocab.value_id(chunk[b].answer))
                if not cot:
                    break
    finally:
        model.to(torch.float32)
    return correct / len(data)
