"""A tiny CLM -> MLM transfer experiment feeding transfer.py with real learning curves (Cheng et al. Sec. 4).

Per model size: an MLM learning curve from scratch and, for each CLM pre-training amount D_c, a causal
LM pre-trained on D_c tokens (its own cosine schedule) and an MLM learning curve from its weights, on
the same batches and masks as scratch, logging validation MLM loss at log-spaced token counts.
`effectively_transferred_tokens` turns each pair of curves into D_t = D_e - D_f, and `fit_transfer_law`
fits D_t = k * D_f^alpha * N^beta (Hernandez et al.), times D_c^gamma when the CLM amounts vary: the
dependence on D_c is what the compute-split planner needs.

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
    without_contact_head_grads,
    worker_pool,
)

MIN_POSITIVE_FRACTION = 0.5  # fit the transfer law only when most checkpoints show a transfer gain


@dataclass(frozen=True)
class TransferConfig:
    """The quick profile's transfer experiment (the paper's: 470M-10.7B models, 10B-200B+ tokens)."""

    shapes: tuple[tuple[int, int], ...] = ((8, 1), (16, 1))  # (hidden, layers), ESM backbone
    clm_tokens: tuple[float, ...] = (1e5, 2e5)  # CLM pre-training amounts, one CLM run (own cosine schedule) each
    mlm_tokens: float = 3e5  # MLM tokens of each learning curve (scratch and transferred)
    checkpoints: int = 6  # log-spaced evaluation points along the MLM runs
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
        return without_contact_head_grads(EsmForMaskedLM(cfg))
    finally:
        hf_logging.set_verbosity(verbosity)


def _clm_loss(model, x: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=x).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def _train(model, objective: str, steps: int, train: torch.Tensor, valid: torch.Tensor, cfg: TransferConfig,
           seed: int, schedule: str, eval_at: set[int] | None = None) -> list[tuple[int, float]]:
    """AdamW (beta2 0.95, wd 0.1, clip 1) through `core.accel`; cosine to lr/10 or constant after warm-up;
    MLM evals at `eval_at`."""
    from tenfold.core.accel import accelerator, local_slice

    tok = AminoAcidTokenizer()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    acc = accelerator()
    wrapped, opt = acc.prepare(model, opt)
    rows = local_slice(torch.arange(cfg.batch_size), acc)
    gen = torch.Generator().manual_seed(seed)
    warmup = max(1, round(cfg.warmup_fraction * steps))
    curve = []
    wrapped.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps, warmup, cfg.lr, schedule)
        x = train[torch.randint(0, len(train), (cfg.batch_size,), generator=gen)].to(acc.device)
        loss = _clm_loss(wrapped, x[rows]) if objective == "clm" else objective_loss(wrapped, "mlm", x, tok, cfg, gen,
                                                                                   rows, acc.num_processes)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(wrapped.parameters(), 1.0)
        opt.step()
        if eval_at and step + 1 in eval_at:
            curve.append((step + 1, evaluate(acc.unwrap_model(wrapped), "mlm", valid, tok, cfg)))
    return curve


def transfer_run(hidden: int, layers: int, train: torch.Tensor, valid: torch.Tensor, cfg: TransferConfig) -> list[dict]:
    """One model size: a scratch MLM learning curve and, per CLM pre-training amount, a CLM run then an
    MLM learning curve from its weights (same batches and masks as scratch). One dict per CLM amount."""
    tok = AminoAcidTokenizer()
    tokens_per_step = cfg.batch_size * cfg.seq_len
    mlm_steps = max(2, math.ceil(cfg.mlm_tokens / tokens_per_step))
    eval_steps = sorted({int(s) for s in np.unique(np.geomspace(max(1, mlm_steps // 16), mlm_steps,
                                                                cfg.checkpoints).round())})
    torch.manual_seed(cfg.seed + 1)
    scratch = build_esm(hidden, layers, tok, cfg.seq_len, causal=False)
    scratch_curve = _train(scratch, "mlm", mlm_steps, train, valid, cfg, cfg.seed + 2, "constant", set(eval_steps))
    out = []
    for amount in cfg.clm_tokens:
        clm_steps = max(1, math.ceil(amount / tokens_per_step))
        torch.manual_seed(cfg.seed)
        clm = build_esm(hidden, layers, tok, cfg.seq_len, causal=True)
        _train(clm, "clm", clm_steps, train, valid, cfg, cfg.seed, "cosine")
        transferred = build_esm(hidden, layers, tok, cfg.seq_len, causal=False)
        transferred.load_state_dict(clm.state_dict())  # same parameter names: every weight carries over
        curve = _train(transferred, "mlm", mlm_steps, train, valid, cfg, cfg.seed + 2, "constant", set(eval_steps))
        out.append({"hidden": hidden, "layers": layers, "params": non_embedding_params(scratch),
                    "clm_tokens": clm_steps * tokens_per_step, "tokens": [s * tokens_per_step for s, _ in scratch_curve],
                    "scratch_loss": [v for _, v in scratch_curve], "transferred_loss": [v for _, v in curve]})
    return out


def _worker_run(shape) -> list[dict]:
    return transfer_run(*shape, WORKER["train"], WORKER["valid"], WORKER["cfg"])


def run_transfer(proteins: ProteinSet, cfg: TransferConfig = TransferConfig()) -> dict:
    """Learning curves for every shape and CLM amount, D_t per checkpoint, and the transfer law when it can
    be fitted."""
    if cfg.workers < 1 or not cfg.shapes or not cfg.clm_tokens:
        raise InputError("the transfer experiment needs at least one shape, one CLM amount and one worker")
    tok = AminoAcidTokenizer()
    train = pack(proteins.train, tok, cfg.seq_len)
    valid = pack(proteins.valid, tok, cfg.seq_len, cfg.valid_windows)
    if cfg.workers == 1 or len(cfg.shapes) == 1:
        with torch_threads(cfg.threads):
            runs = [r for h, layer in cfg.shapes for r in transfer_run(h, layer, train, valid, cfg)]
    else:
        with worker_pool(train, valid, cfg, min(cfg.workers, len(cfg.shapes))) as pool:
            runs = [r for shape_runs in pool.map(_worker_run, list(cfg.shapes)) for r in shape_runs]
    return {"config": {**asdict(cfg), "shapes": [list(s) for s in cfg.shapes], "clm_tokens": list(cfg.clm_tokens)},
            **summarise_transfer(runs)}


def transfer_points(runs: list[dict]) -> np.ndarray:
    """(points, 4) array of (D_f, N, D_t, D_c) over every checkpoint of every run (adds `transferred_tokens`
    and `d_t_over_d_f` to each run)."""
    from tenfold.plmscale.transfer import effectively_transferred_tokens

    points = []
    for r in runs:
        d_t = effectively_transferred_tokens(r["tokens"], r["transferred_loss"], r["tokens"], r["scratch_loss"])
        r["transferred_tokens"] = d_t.tolist()
        r["d_t_over_d_f"] = (d_t / np.asarray(r["tokens"], float)).tolist()
        points += [(f, r["params"], t, r.get("clm_tokens", np.nan)) for f, t in zip(r["tokens"], d_t, strict=True)]
    return np.array(points, float)


def law_from_points(points: np.ndarray):
    """(TransferLaw or None, why not): D_t = k D_f^alpha N^beta D_c^gamma through the points with D_t > 0,
    refused when most checkpoints show no transfer gain, or when alpha <= 0 (no finite extrapolation to D_f -> 0)."""
    from tenfold.plmscale.transfer import fit_transfer_law

    d_f, n, d_t, d_c = points.T
    vary_c = np.isfinite(d_c).all() and np.unique(d_c).size > 1
    try:
        law = fit_transfer_law(d_f, n, d_t, d_c if vary_c else None)
    except InputError as err:  # too few points with D_t > 0, or one size only
        return None, str(err)
    if np.mean(d_t > 0) < MIN_POSITIVE_FRACTION:  # the law would describe a few early points only
        return law, (f"only {int((d_t > 0).sum())} of {len(d_t)} checkpoints have D_t > 0 (transfer hurts beyond "
                     "them), so a law through those points would not describe the curves")
    if law.alpha <= 0:  # D_t -> infinity as D_f -> 0: a planner would spend (almost) everything on CLM
        return law, (f"the fitted exponent on MLM tokens is alpha = {law.alpha:.2f} <= 0 (the gain shrinks as MLM "
                     "training goes on): D_t would grow without bound as D_f goes to 0, so the law cannot be "
                     "extrapolated to plan a split (Hernandez et al.'s alpha is positive)")
    return law, None


def summarise_transfer(runs: list[dict]) -> dict:
    """D_t per checkpoint of each run's curves, the share of checkpoints with D_t > 0, and the law
    D_t = k D_f^alpha N^beta (D_c^gamma when CLM amounts vary) when most have it."""
    points = transfer_points(runs)
    d_f, d_t = points[:, 0], points[:, 2]
    out = {"runs": runs, "points": points.tolist(),
           "positive_fraction": float(np.mean(d_t > 0)), "median_d_t_over_d_f": float(np.median(d_t / d_f))}
    law, why = law_from_points(points)
    out["law"] = None if why else law.to_dict()
    if why:
        out["law_error"] = why
        if law is not None:
            out["law_refused"] = law.to_dict()
    return out
