"""In-context linear vector generation: prompts (x_i, y_i = W x_i + noise), i = 1..n, and a query x_q.

x_i ~ N(0, Sigma) with Sigma's eigenvalues spaced geometrically in [1/kappa, 1] (so its condition number
is exactly kappa and its largest eigenvalue is 1), W has i.i.d. N(0, 1/d) entries, one W per prompt.
Sigma is either one matrix for the whole task (drawn from `cov_seed`) or, with `kappa_max`, a fresh one
per prompt: condition number log-uniform in [1, kappa_max] and a Haar-random rotation, so a model
trained on such prompts cannot fit a preconditioner to a single matrix.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tenfold.core.errors import InputError, check
from tenfold.looped.limits import MAX_DIM, MAX_ELEMENTS, MAX_KAPPA, MAX_N, MAX_NOISE, MAX_PROMPTS


@dataclass(frozen=True)
class TaskConfig:
    """One family of prompts. d: input dimension, m: output dimension, n: examples per prompt."""

    d: int = 5
    m: int = 1
    n: int = 20
    noise: float = 0.0
    kappa: float = 1.0
    cov_seed: int = 0  # the covariance is part of the task: fixed across prompts, drawn from this seed
    kappa_max: float | None = None  # when set: a fresh covariance per prompt (kappa log-uniform in [1, kappa_max])

    def __post_init__(self) -> None:
        check(isinstance(self.n, int) and 1 <= self.n <= MAX_N,
              f"n (examples per prompt) must be an integer in 1..{MAX_N}, got {self.n!r}")
        check(isinstance(self.d, int) and 1 <= self.d <= MAX_DIM, f"d must be an integer in 1..{MAX_DIM}, got {self.d!r}")
        check(isinstance(self.m, int) and 1 <= self.m <= MAX_DIM,
              f"m (output dimension) must be an integer in 1..{MAX_DIM}, got {self.m!r}")
        check(math.isfinite(self.kappa) and 1 <= self.kappa <= MAX_KAPPA,
              f"kappa (condition number) must be in [1, {MAX_KAPPA:g}] (beyond, Sigma's Cholesky is ill-posed in "
              f"float64), got {self.kappa!r}")
        check(math.isfinite(self.noise) and 0 <= self.noise <= MAX_NOISE,
              f"noise must be a number in [0, {MAX_NOISE:g}], got {self.noise!r}")
        check(self.kappa_max is None or (math.isfinite(self.kappa_max) and 1 <= self.kappa_max <= MAX_KAPPA),
              f"kappa_max (largest condition number of the random covariances) must be in [1, {MAX_KAPPA:g}], "
              f"got {self.kappa_max!r}")


@dataclass(frozen=True)
class Prompts:
    """A batch of prompts. X: (B, n, d), Y: (B, n, m), xq: (B, d); yq: (B, m) noiseless query target and
    W: (B, m, d) true weights, when known (generated prompts)."""

    X: torch.Tensor
    Y: torch.Tensor
    xq: torch.Tensor
    yq: torch.Tensor | None = None
    W: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(batch, n, d, m)."""
        return (self.X.shape[0], self.X.shape[1], self.X.shape[2], self.Y.shape[2])

    def to(self, dtype: torch.dtype) -> Prompts:
        yq = None if self.yq is None else self.yq.to(dtype)
        W = None if self.W is None else self.W.to(dtype)
        return Prompts(self.X.to(dtype), self.Y.to(dtype), self.xq.to(dtype), yq, W)


def check_size(what: str, elements: int) -> None:
    """Refuse a run whose tensors would hold more than MAX_ELEMENTS numbers at once, before allocating them."""
    check(elements <= MAX_ELEMENTS, f"{what} would hold about {elements * 8 / 1e9:.3g} GB of float64 tensors, more "
          f"than the {MAX_ELEMENTS * 8 / 1e9:.3g} GB limit: use fewer prompts, examples, dimensions or loops")


def prompt_elements(batch: int, cfg: TaskConfig) -> int:
    """Numbers held by `batch` prompts of `cfg` and their per-prompt covariance roots, if random."""
    return batch * (cfg.n + 1) * (cfg.d + cfg.m) + (batch * cfg.d * cfg.d if cfg.kappa_max is not None else 0)


def covariance(d: int, kappa: float, generator: torch.Generator) -> torch.Tensor:
    """Sigma = U diag(lambda) U^T, lambda geometric from 1 down to 1/kappa, U Haar-random. (d, d) float64."""
    lam = torch.logspace(0.0, -math.log10(kappa), d, dtype=torch.float64) if d > 1 else torch.ones(1, dtype=torch.float64)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return (U * lam) @ U.T


def task_covariance(cfg: TaskConfig) -> torch.Tensor:
    """The task's fixed input covariance Sigma (d, d), float64."""
    return covariance(cfg.d, cfg.kappa, torch.Generator().manual_seed(cfg.cov_seed))


def random_covariance_roots(batch: int, d: int, kappa_max: float, generator: torch.Generator) -> torch.Tensor:
    """Square roots S (B, d, d) of per-prompt covariances Sigma = S S^T: eigenvalues geometric in [1/kappa, 1],
    kappa log-uniform in [1, kappa_max], eigenvectors Haar-random."""
    kappa = torch.exp(torch.rand(batch, generator=generator, dtype=torch.float64) * math.log(kappa_max))
    steps = torch.linspace(0.0, 1.0, d, dtype=torch.float64) if d > 1 else torch.zeros(1, dtype=torch.float64)
    lam = kappa[:, None] ** -steps[None, :]  # (B, d): 1 down to 1/kappa
    Q, R = torch.linalg.qr(torch.randn(batch, d, d, generator=generator, dtype=torch.float64))
    Q = Q * torch.sign(torch.diagonal(R, dim1=1, dim2=2))[:, None, :]  # Haar: fix the QR sign ambiguity
    return Q * lam.sqrt()[:, None, :]


def sample_prompts(batch: int, cfg: TaskConfig, seed: int, dtype: torch.dtype = torch.float64) -> Prompts:
    """Draw `batch` prompts of `cfg`, deterministic in `seed` (a fixed covariance comes from `cfg.cov_seed`;
    random ones from `seed`, so prompts of different seeds have different covariances)."""
    check(isinstance(batch, int) and 1 <= batch <= MAX_PROMPTS, f"batch must be an integer in 1..{MAX_PROMPTS}, got {batch!r}")
    check_size(f"{batch} prompts of d={cfg.d}, m={cfg.m}, n={cfg.n}", prompt_elements(batch, cfg))
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(batch, cfg.n + 1, cfg.d, generator=g, dtype=torch.float64)
    if cfg.kappa_max is None:
        X = Z @ torch.linalg.cholesky(task_covariance(cfg)).T
    else:
        X = Z @ random_covariance_roots(batch, cfg.d, cfg.kappa_max, g).transpose(1, 2)
    W = torch.randn(batch, cfg.m, cfg.d, generator=g, dtype=torch.float64) / math.sqrt(cfg.d)
    clean = X @ W.transpose(1, 2)  # (B, n+1, m)
    noisy = clean + cfg.noise * torch.randn(clean.shape, generator=g, dtype=torch.float64)
    return Prompts(X[:, :-1], noisy[:, :-1], X[:, -1], clean[:, -1], W).to(dtype)


def embed(p: Prompts) -> torch.Tensor:
    """Z_0 = [[x_1 .. x_n, x_q], [y_1 .. y_n, 0]]: (B, d + m, n + 1), one column per token."""
    top = torch.cat([p.X, p.xq[:, None, :]], dim=1)
    bottom = torch.cat([p.Y, torch.zeros_like(p.Y[:, :1])], dim=1)
    return torch.cat([top, bottom], dim=2).transpose(1, 2)


def validate_prompts(p: Prompts, d: int | None = None, m: int | None = None, source: str = "prompts") -> Prompts:
    """Boundary check for user prompts: shapes agree, n >= 1, every value finite, d/m match the model."""
    check(p.X.ndim == 3 and p.Y.ndim == 3 and p.xq.ndim == 2,
          f"{source}: X must be (batch, n, d), Y (batch, n, m), xq (batch, d); got {tuple(p.X.shape)}, {tuple(p.Y.shape)}, {tuple(p.xq.shape)}")
    B, n, dx, my = p.shape
    check(n >= 1, f"{source}: n (examples per prompt) must be >= 1, got {n}")
    check(p.Y.shape[:2] == (B, n), f"{source}: Y has shape {tuple(p.Y.shape)} but X has {tuple(p.X.shape)}: batch and n must agree")
    check(p.xq.shape == (B, dx), f"{source}: xq has shape {tuple(p.xq.shape)}, expected ({B}, {dx})")
    if d is not None:
        check(dx == d, f"{source}: prompts have d={dx} but the weights expect d={d}: use weights built for d={dx}")
    if m is not None:
        check(my == m, f"{source}: prompts have m={my} outputs but the weights expect m={m}")
    tensors = [("X", p.X), ("Y", p.Y), ("xq", p.xq)] + ([("yq", p.yq)] if p.yq is not None else [])
    for name, t in tensors:
        check(bool(torch.isfinite(t).all()), f"{source}: {name} contains NaN or inf values: clean the data first")
    return p


def load_prompts(path: str | Path) -> Prompts:
    """Load user prompts from an .npz with arrays X (B,n,d), Y (B,n,m), xq (B,d) and optional yq (B,m)."""
    path = Path(path)
    check(path.is_file(), f"prompt file {path} does not exist")
    expected = "an .npz with arrays X (B,n,d), Y (B,n,m), xq (B,d)"
    check(path.stat().st_size > 0, f"{path} is empty: expected {expected}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array, not named arrays")
        with loaded as f:
            arrays = {k: torch.from_numpy(np.asarray(f[k], dtype=np.float64)) for k in f.files}
    except (ValueError, TypeError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise InputError(f"{path} is not readable as {expected} ({type(err).__name__}: {err})") from err
    missing = {"X", "Y", "xq"} - arrays.keys()
    check(not missing, f"{path}: missing arrays {sorted(missing)}; expected X (B,n,d), Y (B,n,m), xq (B,d)")
    return validate_prompts(Prompts(arrays["X"], arrays["Y"], arrays["xq"], arrays.get("yq")), source=str(path))
