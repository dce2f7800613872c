"""IsoFLOP sweeps of tiny protein language models: CLM (LLaMA class) and MLM (ESM class).

For each compute budget C and model shape, the run trains on D = C / (6N) tokens (N non-embedding
parameters; Cheng et al. Sec. 3 use the same 6ND for CLM and MLM) with the paper's schedule shape
(AdamW, beta2 0.95, weight decay 0.1, clip 1.0, 2.5% linear warm-up, cosine decay to lr/10 over the
run's own budget; MLM masks 15% BERT-style 80/10/10) and logs its final validation loss to a runs CSV.
A sweep skips the runs already in its CSV, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tenfold.core.errors import InputError
from tenfold.core.io import atomic_write_text
from tenfold.core.progress import progress
from tenfold.core.runtime import torch_threads
from tenfold.data.fasta import ALPHABET, ProteinSet, check_sequence

OBJECTIVES = ("clm", "mlm")
SPECIALS = ("<pad>", "<cls>", "<eos>", "<mask>", "<unk>")
CSV_COLUMNS = ("objective", "hidden", "layers", "budget", "seed", "params", "tokens", "flops", "loss", "steps",
               "epochs", "seconds")


class AminoAcidTokenizer:
    """One token per residue (20 standard + X B Z U O) plus <pad> <cls> <eos> <mask> <unk>."""

    def __init__(self) -> None:
        self.vocab = list(SPECIALS) + list(ALPHABET)
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.pad_id, self.cls_id, self.eos_id, self.mask_id, self.unk_id = range(5)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, seq: str, name: str = "sequence") -> list[int]:
        """<cls> residues <eos>; letters outside the alphabet raise InputError."""
        check_sequence(seq, name)
        return [self.cls_id, *(self.index[c] for c in seq), self.eos_id]

    def decode(self, ids) -> str:
        return "".join(self.vocab[i] for i in ids if i >= len(SPECIALS))


def pack(seqs: list[str], tok: AminoAcidTokenizer, seq_len: int, max_windows: int | None = None) -> torch.Tensor:
    """Encode every sequence as <cls> residues <eos>, concatenate, cut into (windows, seq_len)."""
    import numpy as np

    if max_windows is not None:  # enough sequences for the windows asked for
        total, keep = 0, 0
        while keep < len(seqs) and total < max_windows * seq_len:
            total += len(seqs[keep]) + 2
            keep += 1
        seqs = seqs[:keep]
    lut = np.full(256, 255, dtype=np.uint8)  # byte -> token id, 255 = outside the alphabet
    for t, i in tok.index.items():
        if len(t) == 1:
            lut[ord(t)] = i
    lut[ord("^")], lut[ord("$")] = tok.cls_id, tok.eos_id
    raw = np.frombuffer("".join(f"^{s}$" for s in seqs).encode("ascii", errors="replace"), dtype=np.uint8)
    ids = lut[raw]
    if (ids == 255).any():
        first = int(np.flatnonzero(ids == 255)[0])
        i = int((raw[:first] == ord("^")).sum()) - 1
        check_sequence(seqs[i], f"sequence {i}")
    n = len(ids) // seq_len if max_windows is None else min(len(ids) // seq_len, max_windows)
    if n < 1:
        raise InputError(f"the sequences hold fewer than {seq_len} tokens: give more sequences or a shorter --seq-len")
    return torch.from_numpy(ids[: n * seq_len].astype(np.int64)).view(n, seq_len)


@dataclass(frozen=True)
class SweepConfig:
    """Defaults: the quick profile on 2 CPU cores (budgets far below the paper's 1e18..1e21)."""

    budgets: tuple[float, ...] = (1e10, 3e10, 1e11)
    shapes: tuple[tuple[int, int], ...] = ((8, 1), (12, 1), (16, 1), (24, 1))  # (hidden, layers)
    # per-budget shape windows that replace `shapes` at that budget: (budget, shapes) for every objective,
    # (budget, shapes, objective) for one. An IsoFLOP grid should bracket each budget's optimum, which
    # moves to larger models as the budget grows (and is larger for MLM than CLM here). These bracket the
    # measured minima of the quick profile (docs/plmscale.md).
    budget_shapes: tuple[tuple, ...] = (
        (1e10, ((4, 1), (6, 1), (8, 1), (12, 1)), "clm"),
        (3e10, ((4, 1), (6, 1), (8, 1), (12, 1)), "clm"),
        (1e10, ((6, 1), (8, 1), (12, 1), (16, 1)), "mlm"),
        (3e10, ((6, 1), (8, 1), (12, 1), (16, 1)), "mlm"),
        (1e11, ((8, 1), (12, 1), (16, 1), (24, 1))),
    )
    objectives: tuple[str, ...] = OBJECTIVES
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 1e-2  # scanned 2e-3 vs 1e-2 at 1e11 FLOPs: 1e-2 lower for every 1-layer model (paper: 6e-4..3e-4)
    warmup_fraction: float = 0.025  # Cheng et al. (2.5% linear warm-up)
    mask_prob: float = 0.15  # Cheng et al. (BERT-style 15% masking)
    valid_windows: int = 256  # 32k validation tokens, the same for every run
    seed: int = 0
    threads: int = 1  # tiny models gain nothing from intra-op threads, and lose a lot on a shared CPU
    workers: int = 1  # runs trained at once, one process each (results do not depend on it)

    def grid(self, objective: str | None = None) -> list[tuple[float, int, int]]:
        """Every (budget, hidden, layers) of the sweep for `objective` (None: windows shared by all)."""
        windows = {}
        for entry in self.budget_shapes:  # shared windows first, then the objective's own
            if len(entry) == 2:
                windows[float(entry[0])] = entry[1]
        for entry in self.budget_shapes:
            if len(entry) == 3 and entry[2] == objective:
                windows[float(entry[0])] = entry[1]
        return [(float(c), int(h), int(layer)) for c in self.budgets for h, layer in windows.get(float(c), self.shapes)]


def build_model(objective: str, hidden: int, layers: int, vocab: int, seq_len: int, tok: AminoAcidTokenizer):
    """A LLaMA causal LM (CLM) or an ESM masked LM (MLM) from `transformers`, rotary positions in both."""
    heads = max(1, hidden // 16)
    if objective == "clm":
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=seq_len,
                          bos_token_id=tok.cls_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
                          tie_word_embeddings=True)
        return LlamaForCausalLM(cfg)
    if objective == "mlm":
        from transformers import EsmConfig, EsmForMaskedLM

        cfg = EsmConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, max_position_embeddings=seq_len + 2, position_embedding_type="rotary",
                        pad_token_id=tok.pad_id, mask_token_id=tok.mask_id, token_dropout=False,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, tie_word_embeddings=True)
        return EsmForMaskedLM(cfg)
    raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def non_embedding_params(model) -> int:
    """N of C = 6ND: every parameter except the token embedding (tied to the output layer here)."""
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not emb)


def mask_tokens(x: torch.Tensor, tok: AminoAcidTokenizer, prob: float, gen: torch.Generator):
    """BERT-style masking: choose `prob` of positions; 80% -> <mask>, 10% -> random residue, 10% kept."""
    chosen = torch.rand(x.shape, generator=gen) < prob
    labels = torch.where(chosen, x, torch.full_like(x, -100))
    roll = torch.rand(x.shape, generator=gen)
    inputs = x.clone()
    inputs[chosen & (roll < 0.8)] = tok.mask_id
    rand = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[rand] = torch.randint(len(SPECIALS), len(tok), (int(rand.sum()),), generator=gen)
    return inputs, labels


def learning_rate(step: int, steps: int, warmup: int, peak: float, schedule: str = "cosine") -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to peak/10 (Cheng et al.) or a constant peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def objective_loss(model, objective: str, x: torch.Tensor, tok, cfg, gen: torch.Generator) -> torch.Tensor:
    """Next-token loss (CLM) or BERT-masked loss with `cfg.mask_prob` (MLM) of one batch of windows."""
    if objective == "clm":
        return model(input_ids=x, labels=x).loss
    inputs, labels = mask_tokens(x, tok, cfg.mask_prob, gen)
    return model(input_ids=inputs, labels=labels).loss


@torch.no_grad()
def evaluate(model, objective: str, valid: torch.Tensor, tok, cfg: SweepConfig) -> float:
    """Mean validation loss on fixed windows (and a fixed mask for MLM)."""
    model.eval()
    gen = torch.Generator().manual_seed(12345)
    losses = [objective_loss(model, objective, valid[i: i + 32], tok, cfg, gen).item()
              for i in range(0, len(valid), 32)]
    model.train()
    return float(sum(losses) / len(losses))


def train_run(objective: str, hidden: int, layers: int, budget: float, train: torch.Tensor, valid: torch.Tensor,
              cfg: SweepConfig, seed: int) -> dict:
    """Train one model on D = budget / (6N) tokens; return its runs-table row."""
    tok = AminoAcidTokenizer()
    torch.manual_seed(seed)
    model = build_model(objective, hidden, layers, len(tok), cfg.seq_len, tok)
    n = non_embedding_params(model)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    steps = max(1, math.ceil(budget / (6 * n) / tokens_per_step))
    warmup = max(1, round(cfg.warmup_fraction * steps))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, warmup, cfg.lr)
        rows = torch.randint(0, len(train), (cfg.batch_size,), generator=gen)
        loss = objective_loss(model, objective, train[rows], tok, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    tokens = steps * tokens_per_step
    return {"objective": objective, "hidden": hidden, "layers": layers, "budget": budget, "seed": seed, "params": n,
            "tokens": tokens, "flops": 6.0 * n * tokens, "loss": evaluate(model, objective, valid, tok, cfg),
            "steps": steps, "epochs": tokens / train.numel(), "seconds": round(time.perf_counter() - start, 2)}


def _key(row: dict) -> tuple:
    return (row["objective"], int(row["hidden"]), int(row["layers"]), float(row["budget"]), int(row["seed"]))


def read_runs_csv(path: Path) -> list[dict]:
    import pandas as pd

    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    missing = set(CSV_COLUMNS) - set(frame.columns)
    if missing:
        raise InputError(f"{path} is not a sweep runs table (missing {sorted(missing)}): choose a new --out")
    return frame.to_dict("records")


def write_runs_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(CSV_COLUMNS)] + [",".join(str(r[c]) for c in CSV_COLUMNS) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def run_sweep(proteins: ProteinSet, runs_csv: str | os.PathLike, cfg: SweepConfig = SweepConfig(),
              max_runs: int | None = None) -> list[dict]:
    """Run every (objective, budget, shape) not yet in `runs_csv`; append each finished run to it.

    `max_runs` stops after that many new runs (what an interruption looks like; rerun to resume). With
    `cfg.workers > 1` the runs train in that many processes, the costliest first; every run seeds its own
    initialisation, batches and masks, so the rows do not depend on the number of workers.
    """
    for o in cfg.objectives:
        if o not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {o!r}")
    if cfg.workers < 1:
        raise InputError(f"workers must be at least 1, got {cfg.workers}")
    path = Path(runs_csv)
    rows = read_runs_csv(path)
    done = {_key(r) for r in rows}
    tok = AminoAcidTokenizer()
    train = pack(proteins.train, tok, cfg.seq_len)
    valid = pack(proteins.valid, tok, cfg.seq_len, cfg.valid_windows)
    todo = [(o, h, layer, c) for o in cfg.objectives for c, h, layer in cfg.grid(o)
            if (o, h, layer, c, cfg.seed) not in done]
    if max_runs is not None:
        todo = todo[:max_runs]
    if cfg.workers == 1 or len(todo) <= 1:
        with torch_threads(cfg.threads):
            for o, h, layer, c in progress(todo, desc="plmscale sweep"):
                rows.append(train_run(o, h, layer, c, train, valid, cfg, cfg.seed))
                write_runs_csv(path, rows)
        return rows
    todo.sort(key=lambda t: -t[3] / t[1])  # about the run's optimiser steps: longest first, for balance
    with worker_pool(train, valid, cfg, min(cfg.workers, len(todo))) as pool:
        for row in progress(pool.imap_unordered(_worker_run, todo), total=len(todo), desc="plmscale sweep"):
            rows.append(row)
            write_runs_csv(path, rows)
    return rows


WORKER: dict = {}  # in a pool's worker process: the packed train/valid windows and the config


def _init_worker(train: torch.Tensor, valid: torch.Tensor, cfg) -> None:
    torch.set_num_threads(cfg.threads)
    WORKER.update(train=train.long(), valid=valid.long(), cfg=cfg)


def worker_pool(train: torch.Tensor, valid: torch.Tensor, cfg, processes: int):
    """A process pool whose workers hold the packed windows and `cfg` in `WORKER` and use `cfg.threads`
    threads; spawned, not forked, since torch has started its thread pools here."""
    import multiprocessing as mp

    return mp.get_context("spawn").Pool(processes, initializer=_init_worker,
                                        initargs=(train.to(torch.uint8), valid.to(torch.uint8), cfg))


def _worker_run(job: tuple) -> dict:
    o, h, layer, c = job
    w = WORKER
    return train_run(o, h, layer, c, w["train"], w["valid"], w["cfg"], w["cfg"].seed)


def config_dict(cfg: SweepConfig) -> dict:
    return {**asdict(cfg), "shapes": [list(s) for s in cfg.shapes],
            "budget_shapes": [{"budget": e[0], "shapes": [list(s) for s in e[1]],
                               "objective": e[2] if len(e) == 3 else "all"} for e in cfg.budget_shapes]}
