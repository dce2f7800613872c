"""A tiny CLM -> MLM transfer experiment feeding transfer.py with real learning curves (Cheng et al. Sec. 4).

Per model size: pre-train a causal LM on `clm_tokens`, then train two MLMs on the same batches and masks,
one from scratch and one initialised from the CLM, logging validation MLM loss at log-spaced token
counts. `effectively_transferred_tokens` turns the two curves into D_t = D_e - D_f, and with two or more
sizes `fit_transfer_law` fits D_t = k * D_f^alpha * N^beta.

Backbone: the sweep's CLM (LLaMA) and MLM (ESM) weights do not map one to one, so here both objectives
use the same ESM encoder: the CLM is that encoder with a causal attention mask (`is_decoder=True`),
trained on next-residue prediction; the MLM has bidirectional attention. Every weight carries over.
The MLM learning curves use a constant learning rate after warm-up (one run gives the whole curve),
not the cosine schedule of the IsoFLOP runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runtime import torch_threads
from tenfold.data.fasta import ProteinSet
from tenfold.plmscale.sweep import (
    WORKER,
    AminoAcidTokenizer,
    evaluate,
    learning_rate,
    non_embedding_params,
    objective_loss,
    pack,
    worker_pool,
)

MIN_POSITIVE_FRACTION = 0.5  # fit D_t = k D_f^alpha N^beta only when most checkpoints show a transfer gain


@dataclass(frozen=True)
class TransferConfig:
    """The quick profile's transfer experiment (the paper's: 470M-10.7B models, 10B-200B+ tokens)."""

    shapes: tuple[tuple[int, int], ...] = ((8, 1), (16, 1))  # (hidden, layers), ESM backbone
    clm_tokens: float = 1e6  # CLM pre-training tokens per model
    mlm_tokens: float = 1.5e6  # MLM tokens of each learning curve (scratch and transferred)
    checkpoints: int = 8  # log-spaced evaluation points along the MLM runs
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 1e-2  # as the quick IsoFLOP sweep
    warmup_fraction: float = 0.05  # the paper's transfer recipe: fresh optimiser and schedule, 5% warm-up
    mask_prob: float = 0.15
    valid_windows: int = 128
    seed: int = 0
    threads: int = 1
    workers: int = 1


def build_esm(hidden: int, layers: int, tok: AminoAcidTokenizer, seq_len: int, causal: bool):
    from transformers import EsmConfig, EsmForMaskedLM
    from transformers.utils import logging as hf_logging

    cfg = EsmConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                    num_attention_heads=max(1, hidden // 16), max_position_embeddings=seq_len + 2,
                    position_embedding_type="rotary", pad_token_id=tok.pad_id, mask_token_id=tok.mask_id,
                    token_dropout=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                    tie_word_embeddings=True, is_decoder=causal)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # EsmForMaskedLM warns that is_decoder=True is unusual: here it is the point
    try:
        return EsmForMaskedLM(cfg)
    finally:
        hf_logging.set_verbosity(verbosity)


def _clm_loss(model, x: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def _train(model, objective: str, steps: int, train: torch.Tensor, valid: torch.Tensor, cfg: TransferConfig,
           seed: int, schedule: str, eval_at: set[int] | None = None) -> list[tuple[int, float]]:
    """AdamW (beta2 0.95, wd 0.1, clip 1); cosine to lr/10 or constant after warm-up; MLM evals at `eval_at`."""
    tok = AminoAcidTokenizer()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    warmup = max(1, round(cfg.warmup_fraction * steps))
    curve = []
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, warmup, cfg.lr, schedule)
        x = train[torch.randint(0, len(train), (cfg.batch_size,), generator=gen)]
        loss = _clm_loss(model, x) if objective == "clm" else objective_loss(model, "mlm", x, tok, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if eval_at and step + 1 in eval_at:
            curve.append((step + 1, evaluate(model, "mlm", valid, tok, cfg)))
    return curve


def transfer_run(hidden: int, layers: int, train: torch.Tensor, valid: torch.Tensor, cfg: TransferConfig) -> dict:
    """One model size: CLM pre-training, then scratch and CLM-initialised MLM learning curves."""
    tok = AminoAcidTokenizer()
    tokens_per_step = cfg.batch_size * cfg.seq_len
    clm_steps = max(1, math.ceil(cfg.clm_tokens / tokens_per_step))
    mlm_steps = max(2, math.ceil(cfg.mlm_tokens / tokens_per_step))
    eval_steps = sorted({int(s) for s in np.unique(np.geomspace(max(1, mlm_steps // 32), mlm_steps,
                                                                cfg.checkpoints).round())})
    torch.manual_seed(cfg.seed)
    clm = build_esm(hidden, layers, tok, cfg.seq_len, causal=True)
    _train(clm, "clm", clm_steps, train, valid, cfg, cfg.seed, "cosine")
    torch.manual_seed(cfg.seed + 1)
    scratch = build_esm(hidden, layers, tok, cfg.seq_len, causal=False)
    transferred = build_esm(hidden, layers, tok, cfg.seq_len, causal=False)
    transferred.load_state_dict(clm.state_dict())  # same parameter names: every weight carries over
    curves = {}
    for name, model in (("scratch", scratch), ("transferred", transferred)):  # same batches and masks
        curves[name] = _train(model, "mlm", mlm_steps, train, valid, cfg, cfg.seed + 2, "constant", set(eval_steps))
    return {"hidden": hidden, "layers": layers, "params": non_embedding_params(scratch),
            "clm_tokens": clm_steps * tokens_per_step,
            "tokens": [s * tokens_per_step for s, _ in curves["scratch"]],
            "scratch_loss": [v for _, v in curves["scratch"]],
            "transferred_loss": [v for _, v in curves["transferred"]]}


def _worker_run(shape) -> dict:
    return transfer_run(*shape, WORKER["train"], WORKER["valid"], WORKER["cfg"])


def run_transfer(proteins: ProteinSet, cfg: TransferConfig = TransferConfig()) -> dict:
    """Learning curves for every shape, D_t per checkpoint, and the transfer law when it can be fitted."""
    if cfg.workers < 1 or not cfg.shapes:
        raise InputError("the transfer experiment needs at least one shape and one worker")
    tok = AminoAcidTokenizer()
    train = pack(proteins.train, tok, cfg.seq_len)
    valid = pack(proteins.valid, tok, cfg.seq_len, cfg.valid_windows)
    if cfg.workers == 1 or len(cfg.shapes) == 1:
        with torch_threads(cfg.threads):
            runs = [transfer_run(h, layer, train, valid, cfg) for h, layer in cfg.shapes]
    else:
        with worker_pool(train, valid, cfg, min(cfg.workers, len(cfg.shapes))) as pool:
            runs = pool.map(_worker_run, list(cfg.shapes))
    return {"config": {**asdict(cfg), "shapes": [list(s) for s in cfg.shapes]}, **summarise_transfer(runs)}


def summarise_transfer(runs: list[dict]) -> dict:
    """D_t per checkpoint of each size's curves (adds `transferred_tokens`, `d_t_over_d_f` to each run),
    the share of checkpoints with D_t > 0, and the law D_t = k D_f^alpha N^beta when most have it."""
    from tenfold.plmscale.transfer import effectively_transferred_tokens, fit_transfer_law

    points = []
    for r in runs:
        d_t = effectively_transferred_tokens(r["tokens"], r["transferred_loss"], r["tokens"], r["scratch_loss"])
        r["transferred_tokens"] = d_t.tolist()
        r["d_t_over_d_f"] = (d_t / np.asarray(r["tokens"], float)).tolist()
        points += [(f, r["params"], t) for f, t in zip(r["tokens"], d_t, strict=True)]
    d_f, n, d_t = (np.array(c, float) for c in zip(*points, strict=True))
    out = {"runs": runs,
           "positive_fraction": float(np.mean(d_t > 0)), "median_d_t_over_d_f": float(np.median(d_t / d_f))}
    try:
        law = fit_transfer_law(d_f, n, d_t)
    except InputError as err:  # too few points with D_t > 0, or one size only
        out["law"] = None
        out["law_error"] = str(err)
        return out
    if out["positive_fraction"] < MIN_POSITIVE_FRACTION:  # the law would describe a few early points only
        out["law"] = None
        out["law_on_positive_points_only"] = law.to_dict()
        out["law_error"] = (f"only {int((d_t > 0).sum())} of {len(d_t)} checkpoints have D_t > 0 (transfer hurts "
                            "beyond them), so a law through those points would not describe the curves; its fit "
                            "is kept as law_on_positive_points_only")
    else:
        out["law"] = law.to_dict()
    return out
