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

The authors train the gates of every other sampling step only (their `t = 2k + 1` draw, the lazy step
being t - 1); the other steps' gates keep their zero initialisation and always compute, so a module is
never reused twice in a row. `LazyGates.active` records which steps have gates.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.io import load_tensors, save_tensors

KINDS = ("attn", "mlp")
OBJECTIVES = ("one-step", "end-point")
PATTERNS = ("alternate", "every")
FORMAT = "tenfold.lazydit.gates/2"


@dataclass(frozen=True)
class LazyConfig:
    """The authors' recipe: `run-lazy-learning-imagenet.sh` (lr, penalty ratios, steps, batch),
    `lazy_learning_imagenet.py` (the t = 2k + 1 draw, AdamW without weight decay) and
    `gaussian_diffusion.py: lazy_learning_loss` (one recorded DDIM step, then the loss at the next).

    `objective="end-point"` is ours (not the paper's): a window of `window` lazy steps rolled out after
    the recorded one, judged on the clean-image estimate at the window's end (see train.py).
    """

    threshold: float = 0.5  # skip when s < 0.5 (the sigmoid of the zero-initialised layer)
    rho_attn: float = 1e-7  # run script's attn_lazy_loss_ratio, for DiT-XL/2 latents (the argparse default 1e-2 is overridden)
    rho_mlp: float = 1e-7  # run script's mlp_lazy_loss_ratio
    lr: float = 1e-4  # run script's learning_rate (the argparse default 1e-2 is overridden)
    train_iters: int = 500  # run script's max_step
    batch_size: int = 64  # run script's local_batch_size (per GPU; the authors run 8 GPUs, 512 in all)
    objective: str = "one-step"  # the paper's: the loss at the step after the recorded one
    pattern: str = "alternate"  # lazy_learning_imagenet.py: t = randint(0, T/2) * 2 + 1, lazy step t - 1
    window: int = 1  # lazy steps after the recorded one; the one-step objective has exactly 1
    checkpointing: bool = False  # gradient checkpointing of each rolled-out step (end-point objective)
    label_dropout: float = 0.1  # lazy_learning_loss: labels dropped to the null class with probability 0.1

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        for name in ("rho_attn", "rho_mlp", "lr"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.train_iters < 0 or self.batch_size < 1:
            raise InputError(f"train_iters must be >= 0 and batch_size >= 1, got {self.train_iters}, {self.batch_size}")
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.pattern not in PATTERNS:
            raise InputError(f"pattern must be one of {', '.join(PATTERNS)}, got {self.pattern!r}")
        if self.window < 1:
            raise InputError(f"window must be >= 1 lazy step, got {self.window}")
        if self.objective == "one-step" and self.window != 1:
            raise InputError(f"the one-step objective takes the loss at one lazy step (window 1), got window {self.window}: "
                             "use objective 'end-point' for a longer window")
        if not 0 <= self.label_dropout < 1:
            raise InputError(f"label_dropout must be in [0, 1), got {self.label_dropout}")


def check_threshold(threshold: float) -> float:
    """The skip threshold is a probability strictly inside (0, 1)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < float(threshold) < 1.0:
        raise InputError(f"threshold must be in the open interval (0, 1), got {threshold!r}; the paper uses 0.5")
    return float(threshold)


def lazy_steps(num_steps: int, pattern: str) -> list[int]:
    """Sampling steps (0 = the noisiest) whose gates are trained and used.

    "alternate" is the authors' draw t = 2k + 1 < T in the respaced index (T - 1 = the noisiest), the
    lazy step being t - 1: in sampling order the steps num_steps - 1, num_steps - 3, ... down to 1.
    "every" is every step but the first (which has no previous output to reuse).
    """
    if pattern not in PATTERNS:
        raise InputError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    if pattern == "every":
        return list(range(1, num_steps))
    return sorted(num_steps - 1 - 2 * k for k in range(num_steps // 2))


def lazy_score(weight: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """s = sigmoid(sum_n sum_d W[d] Z[n, d]) per sample; z (batch, tokens, dim), weight (dim,) -> (batch,)."""
    return torch.sigmoid((z @ weight.to(device=z.device, dtype=z.dtype)).sum(-1))


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
    s = 0.5 everywhere and nothing is skipped before training. Steps outside `active` have no gate:
    they always compute (s = 1), whatever the threshold.
    """

    gate_cost = True  # each decision runs the lazy learning layer: tokens x dim MACs

    def __init__(self, num_steps: int, num_layers: int, dim: int, active: Sequence[int] | None = None):
        super().__init__()
        if min(num_steps, num_layers, dim) < 1:
            raise InputError(f"LazyGates needs positive sizes, got steps={num_steps}, layers={num_layers}, dim={dim}")
        self.num_steps, self.num_layers, self.dim = num_steps, num_layers, dim
        self.attn = nn.Parameter(torch.zeros(num_steps, num_layers, dim))
        self.mlp = nn.Parameter(torch.zeros(num_steps, num_layers, dim))
        steps = range(1, num_steps) if active is None else active
        mask = torch.zeros(num_steps, dtype=torch.bool)
        for step in steps:
            if not 1 <= step < num_steps:
                raise InputError(f"active steps must be in [1, {num_steps}) (step 0 has nothing to reuse), got {step}")
            mask[step] = True
        self.register_buffer("active", mask)

    @classmethod
    def for_model(cls, model: nn.Module, num_steps: int, pattern: str = "alternate") -> LazyGates:
        """Zero gates sized for a diffusers DiT, active on the steps of `pattern`."""
        from tenfold.lazydit.dit import dit_blocks, inner_dim

        return cls(num_steps, len(dit_blocks(model)), inner_dim(model), lazy_steps(num_steps, pattern))

    def is_active(self, step: int) -> bool:
        return bool(self.active[step])

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor:
        """s for module `kind` of block `layer` at sampling step `step`, shape (batch,)."""
        if not self.active[step]:
            return torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
        return lazy_score(getattr(self, kind)[step, layer], z)

    def save(self, path: str | os.PathLike) -> Path:
        meta = {"format": FORMAT, "num_steps": str(self.num_steps), "num_layers": str(self.num_layers),
                "dim": str(self.dim)}
        return save_tensors(path, {"attn": self.attn, "mlp": self.mlp, "active": self.active.to(torch.uint8)},
                            metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LazyGates:
        tensors = load_tensors(path)
        shape = tensors["attn"].shape if "attn" in tensors else None
        if (not {"attn", "mlp"} <= set(tensors) <= {"attn", "mlp", "active"} or len(shape) != 3
                or tensors["mlp"].shape != shape or ("active" in tensors and tensors["active"].shape != shape[:1])):
            raise InputError(f"{path} is not a LazyDiT gates file (expected tensors 'attn' and 'mlp' of shape "
                             "(steps, layers, dim)): train one with `tenfold lazydit train-gates`")
        active = tensors["active"].bool().nonzero().flatten().tolist() if "active" in tensors else None
        gates = cls(*shape, active=active)
        with torch.no_grad():
            gates.attn.copy_(tensors["attn"])
            gates.mlp.copy_(tensors["mlp"])
        return gates
