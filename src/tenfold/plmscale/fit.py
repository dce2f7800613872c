"""Fitting scaling laws to a table of training runs (Cheng et al. 2024, Sec. 3 and App. (Eq. 8/9);
the Chinchilla methods they follow, Hoffmann et al. 2022 Approaches 2 and 3).

A runs table has one row per finished run: `params` N (non-embedding), `tokens` D, `flops` C
(default 6·N·D) and the final `loss` L.
"""

from __future__ import annotations

import functools
import itertools
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from tenfold.core.errors import InputError

COLUMN_ALIASES = {  # Epoch's Chinchilla extraction names its columns differently
    "params": ("params", "N", "Model Size", "model_size", "parameters"),
    "tokens": ("tokens", "D", "Training Tokens", "training_tokens"),
    "flops": ("flops", "C", "Training FLOP", "training_flop", "compute"),
    "loss": ("loss", "L", "Loss", "final_loss"),
}
# a sweep's nominal IsoFLOP budget (actual FLOPs differ by step rounding), the run's compute under both
# counts (6ND, and with attention and the output layer), and the unique tokens its data held
OPTIONAL_COLUMNS = ("budget", "flops_6nd", "flops_exact", "unique_tokens")
HUBER_DELTA = 1e-3  # Hoffmann et al. 2022 Approach 3; Besiroglu et al. 2024 use the same


def single_thread_blas(fn):
    """Run `fn` with one BLAS thread: L-BFGS-B makes thousands of tiny BLAS calls, and a multi-threaded
    OpenBLAS spinning on a busy CPU made each optimiser step ~70x slower (measured: 0.75 s vs 0.01 s a fit)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # scikit-learn's dependency; without it, run as is
            return fn(*args, **kwargs)
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def read_csv_table(path, expected: str):
    """A CSV file as a DataFrame with at least one row; a missing, empty, binary or malformed file raises
    one InputError naming the file and `expected` (what it should hold)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file: give a CSV with {expected}")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as err:
        raise InputError(f"{path} is empty: give a CSV with {expected}") from err
    except (ValueError, UnicodeDecodeError) as err:  # pandas' ParserError is a ValueError
        raise InputError(f"{path} is not a readable CSV table ({str(err).splitlines()[0][:120]}): give a CSV "
                         f"with {expected}") from err
    if frame.empty:
        raise InputError(f"{path} has a header but no rows: give a CSV with {expected}")
    return frame


def numeric_column(frame, column: str, source) -> np.ndarray:
    """`frame[column]` as float64; text that is not a number raises InputError naming `source`."""
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(np.isnan(values) & frame[column].notna().to_numpy())
    if len(bad):
        raise InputError(f"{source}: column {column!r} holds non-numbers (rows {bad[:5].tolist()}, e.g. "
                         f"{str(frame[column].iloc[bad[0]])[:40]!r})")
    return values


def load_runs(source, drop_highest_loss: int = 0):
    """A runs table (CSV path or DataFrame) -> DataFrame with params, tokens, flops, loss (all > 0).

    Missing `flops` is 6·params·tokens; missing `tokens` is flops/(6·params) (Chinchilla's D = C/6N).
    `drop_highest_loss` removes that many highest-loss runs (Besiroglu et al. drop 5 outliers).
    """
    import pandas as pd

    if isinstance(source, (str, os.PathLike)):
        where = f"runs table {source}"
        frame = read_csv_table(source, "columns params,tokens,loss[,flops]")
    else:
        where = "runs table"
        frame = pd.DataFrame(source).copy()
    cols = {}
    for name, aliases in COLUMN_ALIASES.items():
        for a in aliases:
            if a in frame.columns:
                cols[name] = pd.Series(numeric_column(frame, a, where))
                break
    if "params" not in cols or "loss" not in cols or ("tokens" not in cols and "flops" not in cols):
        raise InputError(f"runs table lacks columns: need params, loss and tokens (or flops); found {list(frame.columns)}")
    if "tokens" not in cols:
        cols["tokens"] = cols["flops"] / (6.0 * cols["params"])
    if "flops" not in cols:
        cols["flops"] = 6.0 * cols["params"] * cols["tokens"]
    runs = pd.DataFrame({k: cols[k].to_numpy() for k in ("params", "tokens", "flops", "loss")})
    for extra in OPTIONAL_COLUMNS:  # a sweep's nominal budget, both FLOP counts, the unique tokens it drew from
        if extra in frame.columns:
            runs[extra] = numeric_column(frame, extra, where)
    for k in runs.columns:
        bad = runs.index[~(np.isfinite(runs[k]) & (runs[k] > 0))]
        if len(bad):
            raise InputError(f"runs table column {k!r} must be finite and positive; rows {list(bad[:5])} are not")
    if drop_highest_loss:
        runs = runs.drop(runs["loss"].nlargest(drop_highest_loss).index)
    return runs.reset_index(drop=True)


def canonical_order(runs):
    """Runs sorted by (flops, params, tokens, loss): seeded resampling then does not depend on the order
    of the table's rows (a resumed sweep's CSV holds them in the order they finished)."""
    return runs.sort_values(["flops", "params", "tokens", "loss"], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# Approach 3: the parametric law L(N, D) = E + A / N^alpha + B / D^beta
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParametricLaw:
    """L(N, D) = E + A/N^alpha + B/D^beta (Cheng et al. Eq. 8; Hoffmann et al. Eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, N, D):
        N, D = np.asarray(N, float), np.asarray(D, float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    @property
    def a(self) -> float:
        """Exponent of N_opt ~ C^a: beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt ~ C^b: alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    def optimal(self, C):
        """Closed-form minimiser of L under C = 6ND (Hoffmann et al. App. D.2): (N_opt, D_opt)."""
        C = np.asarray(C, float)
        G = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        return G * (C / 6.0) ** self.a, (C / 6.0) ** self.b / G


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    absr = np.abs(r)
    return np.where(absr <= delta, 0.5 * r**2, delta * (absr - 0.5 * delta))


def _objective(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float):
    """Sum of Huber(LSE(a - alpha log N, b - beta log D, e) - log L) and its gradient (Eq. 9).

    theta = (a, b, e, alpha, beta) with A = e^a, B = e^b, E = e^e.
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])  # (3, runs)
    top = terms.max(axis=0)
    ex = np.exp(terms - top)
    total = ex.sum(axis=0)
    r = top + np.log(total) - logL
    loss = huber(r, delta).sum()
    dr = np.clip(r, -delta, delta)  # Huber derivative
    w = ex / total * dr  # d pred / d term_k (softmax) times dHuber
    grad = np.array([w[0].sum(), w[1].sum(), w[2].sum(), -(w[0] * logN).sum(), -(w[1] * logD).sum()])
    return loss, grad


def default_grid() -> np.ndarray:
    """Hoffmann et al.'s initialisation grid (4500 starts), as in Besiroglu et al. 2024."""
    grid = itertools.product(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5),
                             np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))
    return np.array(list(grid), dtype=float)


@dataclass
class ParametricFit:
    """The fitted law plus how it was obtained (objective, runs, bootstrap intervals, range of C)."""

    law: ParametricLaw
    objective: float
    n_runs: int
    flops_range: tuple[float, float]
    intervals: dict = field(default_factory=dict)  # name -> [lo, hi] (95% bootstrap)
    starts: int = 0

    def to_dict(self) -> dict:
        return {"law": "parametric", **asdict(self.law), "a": self.law.a, "b": self.law.b,
                "objective": self.objective, "n_runs": self.n_runs, "flops_range": list(self.flops_range),
                "intervals": self.intervals, "starts": self.starts}


def _check_enough(n_runs: int, n_params: int, what: str) -> None:
    if n_runs <= n_params:
        raise InputError(f"{what} has {n_params} parameters but only {n_runs} runs: give at least {n_params + 1} runs")


@single_thread_blas
def fit_parametric(runs, delta: float = HUBER_DELTA, grid: np.ndarray | None = None, top_starts: int = 50,
                   init: np.ndarray | None = None) -> ParametricFit:
    """Minimise the log-space Huber objective with L-BFGS-B from the best `top_starts` grid points.

    Every grid point is scored first (one vectorised pass) and L-BFGS-B runs from the best ones; with
    `top_starts=len(grid)` this is the exhaustive multi-start of Hoffmann / Besiroglu. `init` (theta =
    log A, log B, log E, alpha, beta) is one more start; with `top_starts=0` it is the only one.
    """
    runs = load_runs(runs)
    _check_enough(len(runs), 5, "the parametric law L = E + A/N^alpha + B/D^beta")
    logN, logD, logL = (np.log(runs[c].to_numpy()) for c in ("params", "tokens", "loss"))
    if top_starts < 1 and init is None:
        raise InputError("fit_parametric needs top_starts >= 1 or an init point to start from")
    chosen = np.empty((0, 5))
    if top_starts > 0:
        starts = default_grid() if grid is None else np.asarray(grid, float)
        chosen = starts[np.argsort(_grid_scores(starts, logN, logD, logL, delta))[:top_starts]]
    if init is not None:
        chosen = np.vstack([np.asarray(init, float)[None], chosen])
    best = None
    for x0 in chosen:
        res = _minimise(x0, logN, logD, logL, delta)
        if best is None or res.fun < best.fun:
            best = res
    a, b, e, alpha, beta = best.x
    law = ParametricLaw(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta))
    flops = runs["flops"].to_numpy()
    objective = float(_objective(best.x, logN, logD, logL, delta)[0])
    return ParametricFit(law, objective, len(runs), (float(flops.min()), float(flops.max())), starts=len(chosen))


def _minimise(x0, logN, logD, logL, delta):
    """L-BFGS-B on the objective in units of delta^2 per run (its value is then O(1) to O(100)).

    scipy's stopping rules are not scale-free: `ftol` compares the change of f with max(|f|, 1), and the
    raw Huber sum is ~1e-4 for 50 runs at 0.5% noise, so with the defaults (Besiroglu et al. use them) a
    fit stops ~10 iterations in, wherever it started; bootstrap refits warm-started at the full-data
    optimum then barely move and their intervals come out ~10x too narrow. Rescaling makes the default
    tolerances mean what they say (checked against ftol=1e-15, gtol=1e-12 on the raw objective).
    """
    scale = 1.0 / (delta**2 * len(logL))

    def scaled(theta):
        f, g = _objective(theta, logN, logD, logL, delta)
        return f * scale, g * scale

    return minimize(scaled, x0, jac=True, method="L-BFGS-B", options={"maxiter": 5000})


def _grid_scores(starts, logN, logD, logL, delta) -> np.ndarray:
    a, b, e, alpha, beta = (starts[:, i:i + 1] for i in range(5))  # (starts, 1)
    terms = np.stack([a - alpha * logN, b - beta * logD, np.broadcast_to(e, (len(starts), len(logN)))])
    return huber(logsumexp(terms, axis=0) - logL, delta).sum(axis=1)


def _theta(law: ParametricLaw) -> np.ndarray:
    return np.array([np.log(law.A), np.log(law.B), np.log(law.E), law.alpha, law.beta])


# the paper's single start p0 = [e, a, b, alpha, beta] = [1, 5, 10, 0.5, 0.5] (ScalingProteinLM,
# analysis/refit_table_a9.py), as our theta = (log A, log B, log E, alpha, beta)
PAPER_INIT = np.array([5.0, 10.0, 1.0, 0.5, 0.5])


def fit_parametric_both(runs, delta: float = HUBER_DELTA, top_starts: int = 50) -> dict[str, ParametricFit]:
    """The paper's single-start fit (`--init paper`) and the multi-start fit, side by side: on the paper's
    CLM training curves the single start stops in a local optimum that the grid's best starts get below
    (the authors' refit); on its released IsoFLOP table both reach the same optimum (docs/plmscale.md)."""
    return {"paper_init": fit_parametric(runs, delta, top_starts=0, init=PAPER_INIT),
            "multi_start": fit_parametric(runs, delta, top_starts=top_starts)}


# ------------------------------------------------------------------------------------------------
# Repeated data: Muennighoff et al. 2023 (data-constrained scaling), effective tokens D'
# ------------------------------------------------------------------------------------------------

MUENNIGHOFF_R_STAR = 15.4  # R_D* fitted by Muennighoff et al. 2023 (Eq. 5) on C4: ~16 epochs before returns vanish


def effective_tokens(D, unique, r_star):
    """D' = U + U R* (1 - exp(-R / R*)), R = D / U - 1 repetitions beyond the first epoch (Muennighoff et al.
    2023, Eq. 5); D' = D within the first epoch. Repeated tokens are worth less and less, at most U (1 + R*)."""
    D, U = np.asarray(D, float), np.asarray(unique, float)
    R = np.maximum(D / U - 1.0, 0.0)
    return np.where(D > U, U + U * r_star * (1.0 - np.exp(-R / r_star)), D)


@dataclass(frozen=True)
class DataConstrainedLaw:
    """L(N, D) = E + A / N^alpha + B / D'^beta with D' the effective tokens of `effective_tokens`."""

    law: ParametricLaw
    r_star: float

    def loss(self, N, D, unique):
        return self.law.loss(N, effective_tokens(D, unique, self.r_star))


def _objective_dc(theta, logN, D, U, logL, delta):
    """The Huber objective of Eq. 9 with D' for D and its gradient in theta = (a, b, e, alpha, beta, log R*)."""
    a, b, e, alpha, beta, r = theta
    rs = np.exp(r)
    R = np.maximum(D / U - 1.0, 0.0)
    ex_r = np.exp(-R / rs)
    rep = D > U
    Dp = np.where(rep, U + U * rs * (1.0 - ex_r), D)
    dDp_dr = np.where(rep, U * rs * ((1.0 - ex_r) - (R / rs) * ex_r), 0.0)  # dD'/dR* times R* (chain rule in log R*)
    loss, grad5 = _objective(theta[:5], logN, np.log(Dp), logL, delta)
    terms = np.stack([a - alpha * logN, b - beta * np.log(Dp), np.full_like(logN, e)])
    top = terms.max(axis=0)
    ex = np.exp(terms - top)
    resid = top + np.log(ex.sum(axis=0)) - logL
    w1 = ex[1] / ex.sum(axis=0) * np.clip(resid, -delta, delta)
    return loss, np.append(grad5, float((w1 * -beta * dDp_dr / Dp).sum()))


@dataclass
class DataConstrainedFit:
    law: DataConstrainedLaw
    objective: float
    plain_objective: float  # the same runs under the one-epoch law (R* -> infinity)
    n_runs: int
    repeated_runs: int

    def to_dict(self) -> dict:
        return {"law": "data_constrained", **asdict(self.law.law), "r_star": self.law.r_star,
                "objective": self.objective, "plain_objective": self.plain_objective, "n_runs": self.n_runs,
                "repeated_runs": self.repeated_runs}


@single_thread_blas
def fit_data_constrained(runs, unique_tokens: float | None = None, delta: float = HUBER_DELTA,
                         top_starts: int = 20) -> DataConstrainedFit:
    """Fit L = E + A/N^alpha + B/D'^beta and R* (Muennighoff et al.) to runs that repeat their data.

    `unique_tokens` (or the table's `unique_tokens` column) is U. Starts: the best grid points scored at
    Muennighoff's R* = 15.4, each from R* in {5, 15.4, 50}.
    """
    runs = load_runs(runs)
    U = np.full(len(runs), float(unique_tokens)) if unique_tokens is not None else (
        runs["unique_tokens"].to_numpy() if "unique_tokens" in runs.columns else None)
    if U is None or not np.all(np.isfinite(U) & (U > 0)):
        raise InputError("the data-constrained law needs the number of unique tokens (unique_tokens column or argument)")
    D = runs["tokens"].to_numpy()
    repeated = int((D > U).sum())
    if repeated == 0:
        raise InputError("no run repeats its data (tokens <= unique tokens everywhere): R* is not identified; "
                         "fit the one-epoch law instead")
    _check_enough(len(runs), 6, "the data-constrained law (E, A, B, alpha, beta, R*)")
    logN, logL = np.log(runs["params"].to_numpy()), np.log(runs["loss"].to_numpy())
    logDp = np.log(effective_tokens(D, U, MUENNIGHOFF_R_STAR))
    starts = default_grid()
    chosen = starts[np.argsort(_grid_scores(starts, logN, logDp, logL, delta))[:top_starts]]
    scale = 1.0 / (delta**2 * len(logL))

    def scaled(theta):
        f, g = _objective_dc(theta, logN, D, U, logL, delta)
        return f * scale, g * scale

    best = None
    for x0 in chosen:
        for r0 in (np.log(5.0), np.log(MUENNIGHOFF_R_STAR), np.log(50.0)):
            res = minimize(scaled, np.append(x0, r0), jac=True, method="L-BFGS-B", options={"maxiter": 5000})
            if best is None or res.fun < best.fun:
                best = res
    a, b, e, alpha, beta, r = best.x
    law = DataConstrainedLaw(ParametricLaw(float(np.exp(e)), float(np.exp(a)), float(np.exp(b)), float(alpha),
                                           float(beta)), float(np.exp(r)))
    plain = fit_parametric(runs[["params", "tokens", "flops", "loss"]], delta, top_starts=min(top_starts, 10))
    return DataConstrainedFit(law, float(_objective_dc(best.x, logN, D, U, logL, delta)[0]), plain.objective,
                              len(runs), repeated)


PARAMETRIC_NAMES = ("E", "A", "B", "alpha", "beta", "a", "b")
INTERVAL_METHODS = ("percentile", "basic", "bca")


def _summary(law: ParametricLaw) -> list[float]:
    return [law.E, law.A, law.B, law.alpha, law.beta, law.a, law.b]


@single_thread_blas
def bootstrap_samples(runs, fit: ParametricFit, n_boot: int = 200, seed: int = 0, delta: float = HUBER_DELTA,
                      top_starts: int = 3) -> np.ndarray:
    """(n_boot, 7) refits of E, A, B, alpha, beta, a, b on runs resampled with replacement.

    Each refit starts from the full-data optimum and from the best `top_starts` grid points, and runs to
    convergence (see `_minimise`). Resamples with 5 or fewer distinct (N, D) pairs are skipped.
    """
    runs = canonical_order(load_runs(runs))
    rng = np.random.default_rng(seed)
    grid = default_grid()
    samples = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(runs), len(runs))
        boot = runs.iloc[idx]
        if boot[["params", "tokens"]].drop_duplicates().shape[0] <= 5:
            continue
        f = fit_parametric(boot, delta, grid, top_starts=top_starts, init=_theta(fit.law))
        samples.append(_summary(f.law))
    return np.array(samples)


@single_thread_blas
def jackknife_samples(runs, fit: ParametricFit, delta: float = HUBER_DELTA) -> np.ndarray:
    """(runs, 7) leave-one-run-out refits (warm-started at the full fit), for the BCa acceleration."""
    runs = load_runs(runs)
    init = _theta(fit.law)
    return np.array([_summary(fit_parametric(runs.drop(index=i), delta, top_starts=0, init=init).law)
                     for i in range(len(runs))])


def bootstrap_interval(estimate: float, samples: np.ndarray, level: float = 0.95, method: str = "bca",
                       jackknife: np.ndarray | None = None) -> list[float]:
    """A `level` interval from bootstrap replicates of one statistic (Efron & Tibshirani 1993, ch. 13-14).

    percentile: the replicates' quantiles. basic: 2*estimate minus them (reflected). bca: quantiles at
    levels shifted by the bias correction z0 = Phi^-1(P(rep < estimate)) and the acceleration from the
    jackknife skewness (Efron 1987); it corrects a median-biased estimator, which the others do not.
    """
    from scipy.stats import norm

    if method not in INTERVAL_METHODS:
        raise InputError(f"interval method must be one of {', '.join(INTERVAL_METHODS)}, got {method!r}")
    samples = np.asarray(samples, float)
    lo, hi = (1 - level) / 2, (1 + level) / 2
    if method == "percentile":
        return np.quantile(samples, [lo, hi]).tolist()
    if method == "basic":
        q = np.quantile(samples, [lo, hi])
        return [2 * estimate - q[1], 2 * estimate - q[0]]
    if jackknife is None:
        raise InputError("BCa intervals need the jackknife replicates (jackknife_samples)")
    frac = (np.sum(samples < estimate) + 0.5 * np.sum(samples == estimate)) / len(samples)
    z0 = norm.ppf(np.clip(frac, 1.0 / len(samples), 1 - 1.0 / len(samples)))
    d = np.mean(jackknife) - np.asarray(jackknife, float)
    denom = 6.0 * np.sum(d**2) ** 1.5
    acc = float(np.sum(d**3) / denom) if denom > 0 else 0.0
    z = norm.ppf([lo, hi])
    levels = norm.cdf(z0 + (z0 + z) / (1 - acc * (z0 + z)))
    return np.quantile(samples, levels).tolist()


@single_thread_blas
def bootstrap_parametric(runs, fit: ParametricFit, n_boot: int = 200, seed: int = 0, delta: float = HUBER_DELTA,
                         top_starts: int = 3, level: float = 0.95, method: str = "percentile") -> dict:
    """Resample runs with replacement, refit to convergence, return `level` intervals for E, A, B, alpha,
    beta, a, b (percentile by default; "basic" and "bca" too, see `bootstrap_interval`). Sets
    `fit.intervals` and returns it. Measured coverage on synthetic laws: docs/plmscale.md."""
    if method not in INTERVAL_METHODS:
        raise InputError(f"interval method must be one of {', '.join(INTERVAL_METHODS)}, got {method!r}")
    samples = bootstrap_samples(runs, fit, n_boot, seed, delta, top_starts)
    jack = jackknife_samples(runs, fit, delta) if method == "bca" else None
    est = _summary(fit.law)
    fit.intervals = {n: bootstrap_interval(est[i], samples[:, i], level, method,
                                           None if jack is None else jack[:, i])
                     for i, n in enumerate(PARAMETRIC_NAMES)}
    return fit.intervals


# ------------------------------------------------------------------------------------------------
# Approach 2: IsoFLOP profiles
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLaw:
    """y = k · x^p, fitted by least squares in log-log space."""

    k: float
    p: float

    def __call__(self, x):
        return self.k * np.asarray(x, float) ** self.p


def fit_power_law(x, y) -> PowerLaw:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.unique(x).size < 2:
        raise InputError(f"a power law needs at least 2 distinct x values, got {np.unique(x).size}")
    p, logk = np.polyfit(np.log(x), np.log(y), 1)
    return PowerLaw(float(np.exp(logk)), float(p))


def budget_groups(runs, rel_tol: float = 0.05) -> np.ndarray:
    """Group runs into IsoFLOP budgets: the `budget` column when present, else FLOPs within `rel_tol`."""
    if "budget" in runs.columns:
        return np.unique(runs["budget"].to_numpy(), return_inverse=True)[1]
    logc = np.log(runs["flops"].to_numpy())
    order = np.argsort(logc)
    labels = np.empty(len(logc), dtype=int)
    group, anchor = 0, logc[order[0]]
    for i in order:
        if logc[i] - anchor > np.log1p(rel_tol):
            group += 1
            anchor = logc[i]
        labels[i] = group
    return labels


ISOFLOP_METHODS = ("raw", "parabola")


@dataclass
class IsoFlopFit:
    """Per-budget minima and the power laws N_opt = k C^a, D_opt = k C^b (each fitted on its own, so
    b need not be 1 - a), L_min = k C^gamma; `method` says how each budget's minimum was taken."""

    budgets: list[dict]  # {"flops", "n_opt", "d_opt", "loss_min", "parabola", "interior", "edge", ...}
    n_opt: PowerLaw
    d_opt: PowerLaw
    loss: PowerLaw
    method: str = "raw"
    by_count: dict = field(default_factory=dict)  # FLOP count -> {"a": .., "b": ..} of the same minima
    intervals: dict = field(default_factory=dict)

    @property
    def a(self) -> float:
        return self.n_opt.p

    @property
    def b(self) -> float:
        return self.d_opt.p

    @property
    def flops_range(self) -> tuple[float, float]:
        c = [g["flops"] for g in self.budgets]
        return min(c), max(c)

    def to_dict(self) -> dict:
        return {"law": "isoflop", "method": self.method, "a": self.a, "b": self.b, "n_opt": asdict(self.n_opt),
                "d_opt": asdict(self.d_opt), "loss_vs_compute": asdict(self.loss), "by_count": self.by_count,
                "budgets": self.budgets, "intervals": self.intervals, "flops_range": list(self.flops_range)}


def isoflop_minimum(x: np.ndarray, loss: np.ndarray, method: str = "raw") -> tuple[float, float, list | None]:
    """(x at the minimum, the minimum loss, parabola coefficients or None) of one IsoFLOP profile.

    raw: the lowest-loss run, as the paper (Cheng et al. Sec. 3: "the model size with the lowest loss per
    budget"). parabola: the vertex of L = c2 (ln x)^2 + c1 ln x + c0 (Hoffmann et al. Approach 2), used
    only when convex and within half a log-unit of the data; otherwise the raw minimum.
    """
    if method not in ISOFLOP_METHODS:
        raise InputError(f"IsoFLOP minimum method must be one of {', '.join(ISOFLOP_METHODS)}, got {method!r}")
    x, loss = np.asarray(x, float), np.asarray(loss, float)
    if method == "parabola" and np.unique(x).size >= 3:
        lx = np.log(x)
        c2, c1, c0 = np.polyfit(lx, loss, 2)
        xs = -c1 / (2 * c2) if c2 > 0 else None
        if xs is not None and lx.min() - 0.5 <= xs <= lx.max() + 0.5:  # trust the vertex only near the data
            return float(np.exp(xs)), float(c0 - c1**2 / (4 * c2)), [float(c2), float(c1), float(c0)]
    i = int(np.argmin(loss))
    return float(x[i]), float(loss[i]), None


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0]) if len(x) > 1 else float("nan")


def fit_isoflop(runs, rel_tol: float = 0.05, method: str = "raw") -> IsoFlopFit:
    """IsoFLOP profiles: each budget's minimum in N and, separately, in D (raw or parabola), then power laws.

    When the table carries both FLOP counts (`flops_6nd`, `flops_exact`), `by_count` holds the exponents
    of the same minima against each count (C of the minimum's own run: 6ND, or with attention and the
    output layer).
    """
    runs = load_runs(runs)
    labels = budget_groups(runs, rel_tol)
    budgets = []
    for g in np.unique(labels):
        sub = runs[labels == g]
        c = float(sub["budget"].iloc[0]) if "budget" in sub.columns else float(np.exp(np.log(sub["flops"]).mean()))
        params, tokens, loss = (sub[k].to_numpy() for k in ("params", "tokens", "loss"))
        n_opt, l_min, parabola = isoflop_minimum(params, loss, method)
        d_opt = isoflop_minimum(tokens, loss, method)[0]  # D_opt from its own profile, not C / 6 N_opt
        i = int(np.argmin(loss))
        best = params[i]  # interior: the lowest-loss run is neither the smallest nor the largest
        row = {"flops": c, "n_opt": n_opt, "d_opt": d_opt, "loss_min": l_min, "parabola": parabola,
               "runs": int(len(sub)), "interior": bool(params.min() < best < params.max()),
               "edge": None if params.min() < best < params.max() else ("smallest" if best == params.min() else "largest"),
               "flops_6nd_at_min": 6.0 * n_opt * d_opt}
        for count in ("flops_exact", "flops_6nd"):
            if count in sub.columns:  # the minimum run's own compute under each count (raw), or 6 N D at the vertex
                row[f"{count}_at_min"] = float(sub[count].iloc[i]) if method == "raw" else (
                    6.0 * n_opt * d_opt if count == "flops_6nd" else c)
        budgets.append(row)
    if len(budgets) < 2:
        raise InputError(f"IsoFLOP fitting needs runs at 2 or more compute budgets, got {len(budgets)}")
    c = [g["flops"] for g in budgets]
    n, d = [g["n_opt"] for g in budgets], [g["d_opt"] for g in budgets]
    by_count = {count.removeprefix("flops_"): {"a": _slope([g[f"{count}_at_min"] for g in budgets], n),
                                               "b": _slope([g[f"{count}_at_min"] for g in budgets], d)}
                for count in ("flops_exact", "flops_6nd") if f"{count}_at_min" in budgets[0]}
    return IsoFlopFit(budgets, fit_power_law(c, n), fit_power_law(c, d),
                      fit_power_law(c, [g["loss_min"] for g in budgets]), method, by_count)


def isoflop_replicates(runs, n_boot: int = 500, seed: int = 0, rel_tol: float = 0.05,
                       method: str = "raw") -> dict[str, np.ndarray]:
    """Stratified bootstrap (runs resampled within each budget): replicates of a, b and, when the table
    has both FLOP counts, a and b under each count (`a_6nd`, `a_exact`, ...)."""
    runs = canonical_order(load_runs(runs))
    labels = budget_groups(runs, rel_tol)
    rng = np.random.default_rng(seed)
    reps: dict[str, list] = {}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(np.flatnonzero(labels == g), (labels == g).sum()) for g in np.unique(labels)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = fit_isoflop(runs.iloc[idx], rel_tol, method)
        values = {"a": f.a, "b": f.b, **{f"{k}_{count}": v for count, ab in f.by_count.items() for k, v in ab.items()}}
        for k, v in values.items():
            reps.setdefault(k, []).append(v)
    return {k: np.array(v) for k, v in reps.items()}


def bootstrap_isoflop(runs, fit: IsoFlopFit, n_boot: int = 500, seed: int = 0, rel_tol: float = 0.05,
                      level: float = 0.95) -> dict:
    """Percentile intervals of the exponents from `isoflop_replicates`; sets `fit.intervals`."""
    reps = isoflop_replicates(runs, n_boot, seed, rel_tol, fit.method)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    fit.intervals = {k: np.nanpercentile(v, q).tolist() for k, v in reps.items()}
    return fit.intervals


# ------------------------------------------------------------------------------------------------
# The paper's released IsoFLOP table (ScalingProteinLM, analysis/results/isoflop_points.csv)
# ------------------------------------------------------------------------------------------------

PAPER_TABLE_COLUMNS = ("objective", "budget_flops", "model_size_label", "N_params", "final_validation_loss")


def load_paper_isoflop_table(path, objective: str):
    """The (budget, model size, final loss) table behind the paper's IsoFLOP figure, in the format its
    repository releases (columns objective, budget_flops, model_size_label, N_params,
    final_validation_loss), as a runs table for one objective (CLM or MLM): tokens = C / (6 N), as the
    paper's C = 6ND. Read from the user's path; the data are not shipped (the repository has no licence).
    """
    import pandas as pd

    path = Path(path)
    frame = read_csv_table(path, f"the paper's isoflop_points.csv columns {', '.join(PAPER_TABLE_COLUMNS)}")
    missing = [c for c in PAPER_TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path} lacks columns {missing}: the paper's table has {', '.join(PAPER_TABLE_COLUMNS)}")
    sub = frame[frame["objective"].astype(str).str.lower() == objective.lower()]
    if sub.empty:
        found = sorted(frame["objective"].astype(str).unique())
        raise InputError(f"{path} has no rows for objective {objective!r} (found {found})")
    c = pd.to_numeric(sub["budget_flops"], errors="coerce").to_numpy(float)
    n = pd.to_numeric(sub["N_params"], errors="coerce").to_numpy(float)
    loss = pd.to_numeric(sub["final_validation_loss"], errors="coerce").to_numpy(float)
    return load_runs(pd.DataFrame({"params": n, "tokens": c / (6.0 * n), "flops": c, "loss": loss, "budget": c}))


@single_thread_blas
def heldout_rel_err(train_runs, test_runs, delta: float = HUBER_DELTA, top_starts: int = 20) -> float:
    """Mean |L_pred - L| / L of a parametric law fitted on `train_runs`, on the runs it never saw."""
    law = fit_parametric(train_runs, delta, top_starts=top_starts).law
    test = load_runs(test_runs)
    pred = law.loss(test["params"], test["tokens"])
    return float(np.mean(np.abs(pred - test["loss"].to_numpy()) / test["loss"].to_numpy()))


def split_largest_budget(runs, rel_tol: float = 0.05):
    """(train, held-out): the runs at the largest compute budget are held out (an extrapolation test)."""
    runs = load_runs(runs)
    labels = budget_groups(runs, rel_tol)
    last = labels == labels.max()
    return runs[~last].reset_index(drop=True), runs[last].reset_index(drop=True)
