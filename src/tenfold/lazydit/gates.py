"""LazyDiT's lazy learning layers (Shen et al., AAAI 2025, arXiv 2412.12444, Sec. 3.3).

Before every MHSA and every feedforward module of every DiT block, and separately for every sampling
step t, a linear layer without bias reads the module's input Z_t (the adaLN-modulated, normalised
hidden states) and gives one laziness score per sample:

    s_t = sigmoid( sum_{tokens n} sum_{channels d} W_t[d] * Z_t[n, d] )          (lazy learning layer)

s_t is the probability of *computing* the module. At inference the module is skipped, and its output at
the previous sampling step reused, when s_t < threshold (0.5, which is also s_t at the zero
initialisation, so untrained gates never skip). During training the output is the soft mix

    Y_t = s_t * f(Z_t) + (1 - s_t) * Y_{t-1}                                     (lazy training forward)

and the laziness penalty added to the loss is

    L_lazy = rho_attn * sum_l s^l_attn + rho_mlp * sum_l s^l_mlp   (mean over the batch)   (lazy loss)

so that minimising it pushes every s_t down (more laziness) until the output error stops it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.io import load_tensors, save_tensors

KINDS = ("attn", "mlp")
OBJECTIVES = ("eps", "sample")


@dataclass(frozen=True)
class LazyConfig:
    """Paper settings (Sec. 4 'Implementation details' and the authors' training script)."""

    threshold: float = 0.5  # skip when s < 0.5 (the sigmoid of the zero-initialised layer)
    rho_attn: float = 1e-2  # laziness penalty ratio for MHSA (authors' default)
    rho_mlp: float = 1e-2  # laziness penalty ratio for feedforward (authors' default)
    lr: float = 1e-4  # AdamW, as stated in the paper (the authors' script defaults to 1e-2)
    train_iters: int = 500  # the paper trains the lazy layers for 500 steps
    batch_size: int = 256  # authors' local batch size
    rollout: int = 1  # lazy steps per training sample after the recorded one; 1 = the paper's objective
    objective: str = "eps"  # "eps": per-step output MSE (paper); "sample": MSE of the rollout's end point

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        for name in ("rho_attn", "rho_mlp", "lr"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.train_iters < 0 or self.batch_size < 1:
            raise InputError(f"train_iters must be >= 0 and batch_size >= 1, got {self.train_iters}, {self.batch_size}")
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.rollout < 1:
            raise InputError(f"rollout must be >= 1 lazy step (1 is the paper's objective), got {self.rollout}")


def check_threshold(threshold: float) -> float:
    """The skip threshold is a probability strictly inside (0, 1)."""
    if not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) < 1.0:
        raise InputError(f"threshold must be in the open interval (0, 1), got {threshold!r}; the paper uses 0.5")
    return float(threshold)


def lazy_score(weight: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """s = sigmoid(sum_n sum_d W[d] Z[n, d]) per sample; z (batch, tokens, dim), weight (dim,) -> (batch,)."""
    return torch.sigmoid((z @ weight.to(z.dtype)).sum(-1))


def lazy_mix(s: torch.Tensor, computed: torch.Tensor, cached: torch.Tensor) -> torch.Tensor:
    """Y_t = s f(Z_t) + (1 - s) Y_{t-1}, with s (batch,) broadcast over tokens and channels."""
    w = s.reshape(-1, *([1] * (computed.ndim - 1))).to(computed.dtype)
    return w * computed + (1 - w) * cached


def laziness_penalty(s_attn: torch.Tensor, s_mlp: torch.Tensor, rho_attn: float, rho_mlp: float) -> torch.Tensor:
    """rho_attn * sum_l s_attn + rho_mlp * sum_l s_mlp, averaged over the batch; s_* is (layers, batch)."""
    return rho_attn * s_attn.sum(0).mean() + rho_mlp * s_mlp.sum(0).mean()


class LazyGates(nn.Module):
    """All lazy learning layers of a DiT: one (dim -> 1, no bias) linear per step, block and module.

    `weight[kind]` has shape (steps, layers, dim); zero-initialised as in the authors' code, so
    s = 0.5 everywhere and nothing is skipped before training.
    """

    def __init__(self, num_steps: int, num_layers: int, dim: int):
        super().__init__()
        if min(num_steps, num_layers, dim) < 1:
            raise InputError(f"LazyGates needs positive sizes, got steps={num_steps}, layers={num_layers}, dim={dim}")
        self.num_steps, self.num_layers, self.dim = num_steps, num_layers, dim
        self.attn = nn.Parameter(torch.zeros(num_steps, num_layers, dim))
        self.mlp = nn.Parameter(torch.zeros(num_steps, num_layers, dim))

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor:
        """s for module `kind` of block `layer` at sampling step `step`, shape (batch,)."""
        return lazy_score(getattr(self, kind)[step, layer], z)

    def save(self, path: str | os.PathLike) -> Path:
        meta = {"format": "tenfold.lazydit.gates/1", "num_steps": str(self.num_steps),
                "num_layers": str(self.num_layers), "dim": str(self.dim)}
        return save_tensors(path, {"attn": self.attn, "mlp": self.mlp}, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LazyGates:
        tensors = load_tensors(path)
        if set(tensors) != {"attn", "mlp"} or tensors["attn"].ndim != 3 or tensors["attn"].shape != tensors["mlp"].shape:
            raise InputError(f"{path} is not a LazyDiT gates file (expected tensors 'attn' and 'mlp' of shape "
                             "(steps, layers, dim)): train one with `tenfold lazydit train-gates`")
        gates = cls(*tensors["attn"].shape)
        gates.load_state_dict(tensors)
        return gates
