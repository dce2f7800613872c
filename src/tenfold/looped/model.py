"""The linear looped transformer: one linear self-attention (LSA) layer applied T times, shared weights.

LSA(Z) = Z + (1/n) P Z M Z^T Q Z,   M = diag(I_n, 0)  (the query column is never a key/value),
Z_0 = embed(prompt) (d + m rows, n + 1 columns), prediction yhat_q = -[Z_T]_{y-rows, query column}.

With P = [[0, 0], [0, I_m]] and Q = [[-eta Gamma, 0], [0, 0]], the y-rows hold the residuals
y_i - W_t x_i (and -W_t x_q in the query column), so one loop is exactly one (preconditioned) GD step
on L(W) = 1/(2n) sum ||W x_i - y_i||^2: `gd_construction` sets these weights by formula.
"""

from __future__ import annotations

import torch
from torch import nn

from tenfold.core.errors import check
from tenfold.looped.tasks import Prompts, embed, validate_prompts


def lsa(Z: torch.Tensor, P: torch.Tensor, Q: torch.Tensor, n: int) -> torch.Tensor:
    """One linear self-attention layer with residual: Z + (1/n) P (Z M Z^T) Q Z. Z: (B, D, n + 1)."""
    keys = Z[:, :, :n]  # M masks the query column
    return Z + P @ (keys @ keys.transpose(1, 2)) @ Q @ Z / n


def _masks(d: int, m: int, structured: bool) -> tuple[torch.Tensor, torch.Tensor]:
    D = d + m
    if not structured:
        return torch.ones(D, D), torch.ones(D, D)
    p_mask, q_mask = torch.zeros(D, D), torch.zeros(D, D)
    p_mask[d:, d:] = 1  # P writes only to the y-rows
    q_mask[:d, :d] = 1  # Q reads only the x-rows
    return p_mask, q_mask


class LinearLoopedTransformer(nn.Module):
    """One LSA layer looped T times. `structured=True` keeps P, Q to the GD-shaped blocks
    (the parameterisation the theory analyses); `structured=False` trains full (d+m) x (d+m) P, Q."""

    def __init__(self, d: int, m: int = 1, structured: bool = True, init_scale: float = 0.1, seed: int = 0):
        super().__init__()
        check(d >= 1 and m >= 1, f"d and m must be >= 1, got d={d}, m={m}")
        self.d, self.m, self.structured = d, m, structured
        p_mask, q_mask = _masks(d, m, structured)
        self.register_buffer("p_mask", p_mask)
        self.register_buffer("q_mask", q_mask)
        g = torch.Generator().manual_seed(seed)
        D = d + m
        P = torch.zeros(D, D)
        P[d:, d:] = torch.eye(m)
        Q = torch.zeros(D, D)
        Q[:d, :d] = -init_scale * torch.eye(d)
        self.P = nn.Parameter(P + 0.01 * torch.randn(D, D, generator=g) * p_mask)
        self.Q = nn.Parameter(Q + 0.01 * torch.randn(D, D, generator=g) * q_mask)

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.P * self.p_mask, self.Q * self.q_mask

    def forward(self, Z: torch.Tensor, T: int) -> torch.Tensor:
        """Z_T from Z_0 (B, d + m, n + 1): the same LSA layer T times."""
        check(isinstance(T, int) and T >= 1, f"T (number of loops) must be an integer >= 1, got {T!r}")
        P, Q = self.weights()
        n = Z.shape[2] - 1
        for _ in range(T):
            Z = lsa(Z, P, Q, n)
        return Z

    def predict(self, p: Prompts, T: int) -> torch.Tensor:
        """yhat_q = -(y-rows of the query column after T loops). (B, m)"""
        validate_prompts(p, d=self.d, m=self.m)
        Z = self(embed(p).to(self.P.dtype), T)
        return -Z[:, self.d :, -1]


class LinearMultiLayerTransformer(nn.Module):
    """The non-looped contrast: L LSA layers with separate weights, same masks and embedding."""

    def __init__(self, d: int, m: int = 1, layers: int = 1, structured: bool = True, init_scale: float = 0.1, seed: int = 0):
        super().__init__()
        check(layers >= 1, f"layers must be >= 1, got {layers}")
        self.d, self.m = d, m
        self.blocks = nn.ModuleList(
            LinearLoopedTransformer(d, m, structured, init_scale, seed + i) for i in range(layers)
        )

    def predict(self, p: Prompts, T: int | None = None) -> torch.Tensor:
        """yhat_q after the L layers (T, when given, must equal L: the depth is fixed)."""
        check(T is None or T == len(self.blocks), f"this model has {len(self.blocks)} layers; T={T} is not its depth")
        validate_prompts(p, d=self.d, m=self.m)
        Z = embed(p).to(self.blocks[0].P.dtype)
        for block in self.blocks:
            Z = block(Z, 1)
        return -Z[:, self.d :, -1]


def gd_construction(d: int, m: int, eta: float, preconditioner: torch.Tensor | None = None,
                    dtype: torch.dtype = torch.float64) -> LinearLoopedTransformer:
    """Weights set by formula so one loop = one GD step with step size eta (and optional Gamma)."""
    check(eta > 0, f"step size eta must be > 0, got {eta}")
    model = LinearLoopedTransformer(d, m, structured=True).to(dtype)
    Gamma = torch.eye(d, dtype=dtype) if preconditioner is None else preconditioner.to(dtype)
    check(Gamma.shape == (d, d), f"preconditioner must be ({d}, {d}), got {tuple(Gamma.shape)}")
    with torch.no_grad():
        model.P.zero_()
        model.P[d:, d:] = torch.eye(m, dtype=dtype)
        model.Q.zero_()
        # y-rows update by -(eta/n) R^T X Gamma x_i: the GD step W <- W + (eta/n) R^T X Gamma on residuals R
        model.Q[:d, :d] = -eta * Gamma
    return model


def implicit_weights(model: LinearLoopedTransformer, p: Prompts, T: int) -> torch.Tensor:
    """Read the in-context weights W_T the model applies to a query: feed x_q = e_1..e_d. (B, m, d)

    The query column never acts as a key (M masks it), so the prediction is linear in x_q.
    """
    B, _, d, _ = p.shape
    eye = torch.eye(d, dtype=p.X.dtype)
    rep = Prompts(p.X.repeat_interleave(d, 0), p.Y.repeat_interleave(d, 0), eye.repeat(B, 1))
    cols = model.predict(rep, T).reshape(B, d, -1)  # (B, d, m): column j is W_T e_j
    return cols.transpose(1, 2)
