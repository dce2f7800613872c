"""IsoFLOP sweeps of tiny protein language models: CLM (LLaMA class) and MLM (ESM class).

For each compute budget C and model shape, the run trains on D = C / (FLOPs per token) tokens with the
paper's schedule shape (AdamW, beta2 0.95, weight decay 0.1, clip 1.0, 2.5% linear warm-up, cosine
decay to lr/10 over the run's own budget; MLM masks 15% BERT-style 80/10/10) and records its final
validation loss. FLOPs per token (`flops_per_token`): the paper's 6N (Sec. 3), or by default the
exact count that adds attention over the context and the tied output layer, which 6N leaves out and
which dominate at these tiny sizes.

A sweep is a fixed list of jobs (`core.jobs`): each run writes its own file OUT/runs/<id>.json
(atomically), so a scheduler's job array can run them anywhere (`--run-index I`), a killed sweep
reruns only the missing ones, and `gather` writes OUT/runs.csv from the files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tenfold.core.errors import InputError
from tenfold.core.io import atomic_write_json, atomic_write_text, read_json
from tenfold.core.jobs import Job
from tenfold.core.progress import progress
from tenfold.core.runtime import torch_threads
from tenfold.data.fasta import ALPHABET, ProteinSet, check_sequence

OBJECTIVES = ("clm", "mlm")
FLOP_COUNTS = ("exact", "6nd")
SPECIALS = ("<pad>", "<cls>", "<eos>", "<mask>", "<unk>")
CSV_COLUMNS = ("objective", "hidden", "layers", "budget", "seed", "params", "tokens", "flops", "flops_6nd",
               "flops_exact", "unique_tokens", "loss", "steps", "epochs", "seconds")


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


# per-budget shape windows of the quick profile under the exact FLOP count and the quick profile's CPU
# budget (docs/plmscale.md): MLM's bracket its minima at 6e9 and 2e10. CLM barely learns at these budgets
# (losses 2.90-2.92 nats, within 0.004 between neighbouring sizes near each minimum) and its best model
# is the smallest one tried at every budget; the two costliest CLM runs (hidden 2 at 6e9, 4 at 2e10: 6.3M
# of 20M sweep tokens) were left out: measured with them, the raw minimum moves only at 6e9 (70 -> 268
# parameters, 0.0003 nats apart) and CLM's raw exponent goes from 0.94 to 0.92.
# (budget, shapes) for every objective, (budget, shapes, objective) for one
QUICK_WINDOWS = (
    (2e9, ((2, 1), (4, 1), (6, 1)), "clm"),
    (6e9, ((4, 1), (6, 1), (8, 1)), "clm"),
    (2e10, ((6, 1), (8, 1), (12, 1)), "clm"),
    (2e9, ((4, 1), (6, 1), (8, 1)), "mlm"),
    (6e9, ((4, 1), (6, 1), (8, 1)), "mlm"),
    (2e10, ((6, 1), (8, 1), (12, 1)), "mlm"),
)


@dataclass(frozen=True)
class SweepConfig:
    """Defaults: the quick profile on 2 CPU cores (budgets far below the paper's 1e18..1e21)."""

    budgets: tuple[float, ...] = (2e9, 6e9, 2e10)
    shapes: tuple[tuple[int, int], ...] = ((4, 1), (6, 1), (8, 1), (12, 1))  # (hidden, layers)
    # per-budget shape windows that replace `shapes` at that budget (an IsoFLOP grid should bracket each
    # budget's optimum, which moves to larger models as the budget grows)
    budget_shapes: tuple[tuple, ...] = QUICK_WINDOWS
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
    flops: str = "exact"  # how a budget becomes tokens: "exact" (attention and output layer too) or "6nd"

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
        return without_contact_head_grads(EsmForMaskedLM(cfg))
    raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def without_contact_head_grads(model):
    """Freeze ESM's contact-prediction head: the MLM loss never uses it, and data-parallel training refuses
    parameters that get no gradient. One process is unchanged (AdamW already skipped them: no grad)."""
    model.esm.contact_head.requires_grad_(False)
    return model


def non_embedding_params(model) -> int:
    """N of C = 6ND: every parameter except the token embedding (tied to the output layer here)."""
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not emb)


def mask_tokens(x: torch.Tensor, tok: AminoAcidTokenizer, prob: float, gen: torch.Generator):
    """BERT-style masking: choose `prob` of positions; 80% -> <mask>, 10% -> random residue, 10% kept."""
    chosen = torch.rand(x.shape, generator=gen) < prob  # drawn on the CPU generator, then moved to x's device
    roll = torch.rand(x.shape, generator=gen)
    rand = chosen & (roll >= 0.8) & (roll < 0.9)
    replacement = torch.randint(len(SPECIALS), len(tok), (int(rand.sum()),), generator=gen).to(x.device)
    chosen, roll, rand = chosen.to(x.device), roll.to(x.device), rand.to(x.device)
    labels = torch.where(chosen, x, torch.full_like(x, -100))
    inputs = x.clone()
    inputs[chosen & (roll < 0.8)] = tok.mask_id
    inputs[rand] = replacement
    return inputs, labels


def learning_rate(step: int, steps: int, warmup: int, peak: float, schedule: str = "cosine") -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to peak/10 (Cheng et al.) or a constant peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def flops_per_token(params: int, layers: int, hidden: int, seq_len: int, vocab: int, count: str = "exact") -> float:
    """Training FLOPs per token (forward + backward = 3 x forward).

    6nd: 6 N, N the non-embedding parameters (Cheng et al. Sec. 3; Kaplan et al. 2020). exact: adds Kaplan
    et al.'s attention term, 2 L T d per token forward (Table 1: one T x T x d product, the scores over the
    full matrix, causal or not; the mixing of values, another 2 L T d, is not counted), and the tied output
    layer over the vocabulary, 2 V d: at 268 non-embedding parameters this is 3.4x the 6 N count, at 9,288 1.4x.
    """
    if count not in FLOP_COUNTS:
        raise InputError(f"--flops must be one of {', '.join(FLOP_COUNTS)}, got {count!r}")
    extra = layers * seq_len * hidden + vocab * hidden if count == "exact" else 0
    return 6.0 * (params + extra)


def objective_loss(model, objective: str, x: torch.Tensor, tok, cfg, gen: torch.Generator, rows=None,
                   processes: int = 1) -> torch.Tensor:
    """Next-token loss (CLM) or BERT-masked loss with `cfg.mask_prob` (MLM) of one batch of windows.

    `rows`: this process's share of the batch out of `processes` (masks are drawn for the whole batch
    first, so a data-parallel run masks exactly as a single process does). Data parallelism averages the
    processes' gradients, so with more than one process the MLM loss is this share's summed token loss
    over the whole batch's masked count, times `processes`: the processes hold different numbers of
    masked tokens, and a mean of per-process means would weight them unequally. (CLM shares hold equal
    token counts, so their means average to the batch mean.)
    """
    if objective == "clm":
        x = x if rows is None else x[rows]
        return model(input_ids=x, labels=x).loss
    inputs, labels = mask_tokens(x, tok, cfg.mask_prob, gen)
    total = (labels != -100).sum()
    if rows is not None:
        inputs, labels = inputs[rows], labels[rows]
    if processes == 1:
        return model(input_ids=inputs, labels=labels).loss
    logits = model(input_ids=inputs).logits
    summed = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                               ignore_index=-100, reduction="sum")
    return summed * processes / total.clamp(min=1)


@torch.no_grad()
def evaluate(model, objective: str, valid: torch.Tensor, tok, cfg: SweepConfig) -> float:
    """Mean validation loss on fixed windows (and a fixed mask for MLM)."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(12345)
    losses = [objective_loss(model, objective, valid[i: i + 32].to(device), tok, cfg, gen).item()
              for i in range(0, len(valid), 32)]
    model.train()
    return float(sum(losses) / len(losses))


def train_run(objective: str, hidden: int, layers: int, budget: float, train: torch.Tensor, valid: torch.Tensor,
              cfg: SweepConfig, seed: int) -> dict:
    """Train one model on the tokens `budget` buys (FLOPs per token by `cfg.flops`); return its runs row.

    The loop runs through `core.accel` (device, mixed precision, data parallel); one process gives the
    same numbers as a plain loop.
    """
    from tenfold.core.accel import accelerator, local_slice

    tok = AminoAcidTokenizer()
    torch.manual_seed(seed)
    model = build_model(objective, hidden, layers, len(tok), cfg.seq_len, tok)
    n = non_embedding_params(model)
    per_token = {c: flops_per_token(n, layers, hidden, cfg.seq_len, len(tok), c) for c in FLOP_COUNTS}
    tokens_per_step = cfg.batch_size * cfg.seq_len
    steps = max(1, math.ceil(budget / per_token[cfg.flops] / tokens_per_step))
    warmup = max(1, round(cfg.warmup_fraction * steps))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    acc = accelerator()
    model, opt = acc.prepare(model, opt)
    rows = local_slice(torch.arange(cfg.batch_size), acc)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, warmup, cfg.lr)
        batch = train[torch.randint(0, len(train), (cfg.batch_size,), generator=gen)].to(acc.device)
        loss = objective_loss(model, objective, batch, tok, cfg, gen, rows, acc.num_processes)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    tokens = steps * tokens_per_step
    unique = int(train.numel())
    return {"objective": objective, "hidden": hidden, "layers": layers, "budget": budget, "seed": seed, "params": n,
            "tokens": tokens, "flops": per_token[cfg.flops] * tokens, "flops_6nd": per_token["6nd"] * tokens,
            "flops_exact": per_token["exact"] * tokens, "unique_tokens": unique,
            "loss": evaluate(acc.unwrap_model(model), objective, valid, tok, cfg), "steps": steps,
            "epochs": tokens / unique, "seconds": round(time.perf_counter() - start, 2)}


# ------------------------------------------------------------------------------------------------
# The sweep as a job list: one file per run, gathered into runs.csv
# ------------------------------------------------------------------------------------------------


def sweep_jobs(cfg: SweepConfig) -> list[Job]:
    """Every (objective, budget, shape) of the sweep, in a fixed order (the run index of `--run-index`)."""
    for o in cfg.objectives:
        if o not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {o!r}")
    flops_per_token(1, 1, 1, 1, 1, cfg.flops)  # checks the count's name
    return [Job(f"{o}-{h}x{layer}-C{c:.3g}-seed{cfg.seed}",
                {"objective": o, "hidden": h, "layers": layer, "budget": c, "seed": cfg.seed})
            for o in cfg.objectives for c, h, layer in cfg.grid(o)]


def config_key(cfg: SweepConfig, proteins: ProteinSet) -> str:
    """A short hash of everything that changes a run's numbers (not its place in the grid, not workers)."""
    keep = {k: v for k, v in asdict(cfg).items() if k not in ("budgets", "shapes", "budget_shapes", "objectives",
                                                                "workers", "threads", "seed")}
    keep["data"] = [proteins.name, proteins.n_residues, len(proteins.train)]
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def _run_file(out: Path, job: Job) -> Path:
    return Path(out) / "runs" / f"{job.id}.json"


def read_run(path: Path, key: str) -> dict:
    """A finished run's row, refusing a file from another configuration."""
    record = read_json(path)
    if not isinstance(record, dict) or "row" not in record or record.get("config_key") != key:
        raise InputError(f"{path} holds a run of another sweep configuration (or is not a run file): choose a new "
                         "--out, or delete that folder to start over")
    return record["row"]


def run_job(job: Job, out: Path, train: torch.Tensor, valid: torch.Tensor, cfg: SweepConfig, key: str) -> dict:
    """Train one job and write OUT/runs/<id>.json atomically (only the main process writes)."""
    from tenfold.core.runtime import is_main_process

    p = job.params
    row = train_run(p["objective"], p["hidden"], p["layers"], p["budget"], train, valid, cfg, p["seed"])
    if is_main_process():
        atomic_write_json(_run_file(out, job), {"job": job.id, "config_key": key, "row": row})
    return row


def prepare_data(proteins: ProteinSet, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    tok = AminoAcidTokenizer()
    return pack(proteins.train, tok, cfg.seq_len), pack(proteins.valid, tok, cfg.seq_len, cfg.valid_windows)


def run_sweep(proteins: ProteinSet, out: str | os.PathLike, cfg: SweepConfig = SweepConfig(),
              max_runs: int | None = None, only: int | None = None) -> list[dict]:
    """Run every job of the sweep whose file OUT/runs/<id>.json is missing; return the rows of all
    finished jobs (in job order) and write OUT/runs.csv when every job is done.

    `max_runs` stops after that many new runs (what an interruption looks like; rerun to resume);
    `only` runs job `only` alone (a scheduler's array task). With `cfg.workers > 1` the runs train in
    that many processes, the costliest first; every run seeds its own initialisation, batches and
    masks, so the rows do not depend on the number of workers.
    """
    from tenfold.core.jobs import select_job

    if cfg.workers < 1:
        raise InputError(f"workers must be at least 1, got {cfg.workers}")
    out = Path(out)
    jobs = sweep_jobs(cfg)
    key = config_key(cfg, proteins)
    done = {j.id: read_run(_run_file(out, j), key) for j in jobs if _run_file(out, j).is_file()}
    todo = [select_job(jobs, only)] if only is not None else [j for j in jobs if j.id not in done]
    todo = [j for j in todo if j.id not in done][: max_runs]
    train, valid = prepare_data(proteins, cfg)
    if cfg.workers == 1 or len(todo) <= 1:
        with torch_threads(cfg.threads):
            for job in progress(todo, desc="plmscale sweep"):
                done[job.id] = run_job(job, out, train, valid, cfg, key)
    else:
        todo.sort(key=lambda j: -j.params["budget"] / j.params["hidden"])  # about the run's steps: longest first
        with worker_pool(train, valid, cfg, min(cfg.workers, len(todo))) as pool:
            runs = pool.imap_unordered(_worker_job, [(j, str(out), key) for j in todo])
            for job_id, row in progress(runs, total=len(todo), desc="plmscale sweep"):
                done[job_id] = row
    rows = [done[j.id] for j in jobs if j.id in done]
    if len(rows) == len(jobs):
        write_runs_csv(out / "runs.csv", rows)
    return rows


def gather(out: str | os.PathLike) -> list[dict]:
    """Every run file under OUT/runs (one configuration) -> OUT/runs.csv; return the rows."""
    folder = Path(out) / "runs"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise InputError(f"{folder} holds no run files: run `tenfold plmscale sweep --out {out}` first")
    records = [read_json(f) for f in files]
    keys = {r.get("config_key") if isinstance(r, dict) else None for r in records}
    if len(keys) != 1 or None in keys or not all("row" in r for r in records):
        raise InputError(f"{folder} mixes runs of {len(keys)} sweep configurations (or holds other files): gather "
                         "one configuration per folder")
    rows = [r["row"] for r in records]
    write_runs_csv(Path(out) / "runs.csv", rows)
    return rows


def read_runs_csv(path: Path) -> list[dict]:
    from tenfold.plmscale.fit import read_csv_table

    if not path.is_file():
        return []
    frame = read_csv_table(path, f"the sweep's columns {','.join(CSV_COLUMNS)} (or choose a new --out)")
    missing = set(CSV_COLUMNS) - set(frame.columns)
    if missing:
        raise InputError(f"{path} is not a sweep runs table (missing {sorted(missing)}): choose a new --out")
    return frame.to_dict("records")


def write_runs_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(CSV_COLUMNS)] + [",".join(str(r[c]) for c in CSV_COLUMNS) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


WORKER: dict = {}  # in a pool's worker process: the packed train/valid windows and the config


def _init_worker(train: torch.Tensor, valid: torch.Tensor, cfg, settings: dict) -> None:
    from tenfold.core.runtime import configure

    configure(**settings)  # the parent's --device and --mixed-precision
    torch.set_num_threads(cfg.threads)
    WORKER.update(train=train.long(), valid=valid.long(), cfg=cfg)


def worker_pool(train: torch.Tensor, valid: torch.Tensor, cfg, processes: int):
    """A process pool whose workers hold the packed windows and `cfg` in `WORKER` and use `cfg.threads`
    threads; spawned, not forked, since torch has started its thread pools here."""
    import multiprocessing as mp

    from tenfold.core.runtime import mixed_precision_setting, pick_device

    settings = {"device": str(pick_device()), "mixed_precision": mixed_precision_setting()}
    return mp.get_context("spawn").Pool(processes, initializer=_init_worker,
                                        initargs=(train.to(torch.uint8), valid.to(torch.uint8), cfg, settings))


def _worker_job(args: tuple) -> tuple[str, dict]:
    job, out, key = args
    w = WORKER
    return job.id, run_job(job, Path(out), w["train"], w["valid"], w["cfg"], key)


def config_dict(cfg: SweepConfig) -> dict:
    return {**asdict(cfg), "shapes": [list(s) for s in cfg.shapes],
            "budget_shapes": [{"budget": e[0], "shapes": [list(s) for s in e[1]],
                               "objective": e[2] if len(e) == 3 else "all"} for e in cfg.budget_shapes]}
