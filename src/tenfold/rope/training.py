"""Training the formula transformers on one formula size, with early stopping on validation accuracy.

Every formula of a split has the same number of tokens, so a split is one tensor and a batch is a
set of row indices: no padding. Targets are the answer (one token after `=`) or the chain of
thought (the value of every subformula in postfix order, ending with the answer).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tenfold.core.accel import accelerator, local_slice
from tenfold.core.errors import check
from tenfold.rope.model import FormulaTransformer
from tenfold.rope.tasks import Instance
from tenfold.rope.vocab import Vocab

IGNORE = -100


@dataclass(frozen=True)
class TrainConfig:
    """AdamW + one-cycle schedule on the target tokens; stop once validation accuracy reaches `target`
    (checked every `eval_every` steps). Our tiny budget: the paper trains nothing."""

    steps: int = 400
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    target: float = 0.95
    eval_every: int = 25
    cot: bool = False  # targets: every subformula's value (ending with the answer) instead of the answer alone
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.steps >= 1 and self.batch >= 1, f"steps and batch must be >= 1, got {self.steps}, {self.batch}")
        check(self.eval_every >= 1, f"eval_every must be >= 1, got {self.eval_every}")
        check(0 < self.target <= 1, f"target accuracy must be in (0, 1], got {self.target}")


@dataclass(frozen=True)
class Encoded:
    """A split as tensors: ids (N, S) = tokens, '=', targets (minus the last); labels (N, S) = IGNORE except at
    the positions that predict a target; answer (N,) the answer token id."""

    ids: torch.Tensor
    labels: torch.Tensor
    answer: torch.Tensor
    prompt_len: int  # tokens + '=': the prefix the model is given at test time


def encode_split(rows: list[Instance], vocab: Vocab, cot: bool) -> Encoded:
    check(len(rows) >= 1, "no formulas to encode")
    n = len(rows[0].tokens)
    check(all(len(r.tokens) == n for r in rows), "a split must hold formulas of one size (same token count)")
    eq = vocab.ids(["="])[0]
    seqs = [vocab.ids(r.tokens) + [eq] + [vocab.value_id(v) for v in (r.cot if cot else (r.answer,))] for r in rows]
    full = torch.tensor(seqs)  # (N, n + 1 + targets)
    ids, nxt = full[:, :-1], full[:, 1:]
    labels = torch.full_like(ids, IGNORE)
    labels[:, n:] = nxt[:, n:]  # position n is '=': it predicts the first target
    answer = torch.tensor([vocab.value_id(r.answer) for r in rows])
    return Encoded(ids, labels, answer, n + 1)


def train_model(model: FormulaTransformer, train: Encoded, val: Encoded, cfg: TrainConfig,
                loops: int | None = None) -> dict:
    """Fit `model` in place; returns {steps, stopped_early, val_acc, loss}. Runs through `core.accel`, so the
    same loop runs data-parallel under `accelerate launch` (each process takes its slice of the batch)."""
    acc = accelerator()
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = 0.1 if cfg.steps != 10 else 0.2  # OneCycleLR divides by warmup * steps - 1, zero at exactly 10 steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=warmup)
    wrapped, opt = acc.prepare(model, opt)
    val_acc, loss, step = 0.0, float("nan"), 0
    for step in range(1, cfg.steps + 1):
        wrapped.train()
        rows = local_slice(torch.randint(len(train.ids), (cfg.batch,), generator=g), acc)
        logits = wrapped(train.ids[rows].to(acc.device), loops)
        labels = train.labels[rows].to(acc.device)
        out = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)
        acc.backward(out)
        acc.unscale_gradients()  # fp16 mixed precision: unscale before clipping (a no-op otherwise); accelerate's
        torch.nn.utils.clip_grad_norm_(wrapped.parameters(), 1.0)  # own clip costs a tenth of a tiny model's step
        opt.step()
        sched.step()
        opt.zero_grad()
        loss = out.item()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val_acc = chain_accuracy(model, val, loops) if cfg.cot else answer_accuracy(model, val, loops).mean().item()
            if val_acc >= cfg.target:
                break
    model.eval()
    return {"steps": step, "stopped_early": val_acc >= cfg.target and step < cfg.steps, "val_acc": val_acc,
            "loss": loss}


@torch.no_grad()
def answer_accuracy(model: FormulaTransformer, data: Encoded, loops: int | None = None,
                    dtype: torch.dtype = torch.float32, batch: int = 512) -> torch.Tensor:
    """Per formula: 1.0 when the token predicted after '=' is the answer (answer-only models). (N,)"""
    model.eval()
    device = model.embed.weight.device
    run = model.to(dtype)
    try:
        hits = [run(data.ids[i:i + batch, :data.prompt_len].to(device), loops)[:, -1].argmax(-1).cpu()
                == data.answer[i:i + batch] for i in range(0, len(data.ids), batch)]
    finally:
        model.to(torch.float32)
    return torch.cat(hits).double()  # float64: 190 of 200 must read as 0.95 against a 0.95 target


@torch.no_grad()
def chain_accuracy(model: FormulaTransformer, data: Encoded, loops: int | None = None) -> float:
    """Fraction of formulas whose whole chain is right under teacher forcing (= greedy decoding reproduces it)."""
    model.eval()
    logits = model(data.ids.to(model.embed.weight.device), loops).cpu()
    mask = data.labels != IGNORE
    right = (logits.argmax(-1) == data.labels) | ~mask
    return right.all(dim=1).double().mean().item()


@torch.no_grad()
def greedy_accuracy(model: FormulaTransformer, data: Encoded, loops: int | None = None, batch: int = 256) -> torch.Tensor:
    """Per formula: 1.0 when greedy decoding of the chain ends with the answer (chain-of-thought models). (N,)"""
    model.eval()
    device = model.embed.weight.device
    total = data.ids.shape[1] + 1  # prompt + every target
    hits = []
    for i in range(0, len(data.ids), batch):
        seq = data.ids[i:i + batch, :data.prompt_len].to(device)
        while seq.shape[1] < total:
            nxt = model(seq, loops)[:, -1].argmax(-1, keepdim=True)  # the full recompute keeps positions exact
            seq = torch.cat([seq, nxt], dim=1)
        hits.append(seq[:, -1].cpu() == data.answer[i:i + batch])
    return torch.cat(hits).double()
