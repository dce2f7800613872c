"""The linear looped transformer: one linear self-attention (LSA) layer applied T times, shared weights.

LSA(Z) = Z + (1/n) P Z M Z^T Q Z,   M = diag(I_n, 0)  (the query column is never a key/value),
Z_0 = embed(prompt) (d + m rows, n + 1 columns), prediction yhat_q = -[Z_T]_{y-rows, query column}.

With P = [[0, 0], [0, I_m]] and Q = [[-eta Gamma, 0], [0, 0]], the y-rows hold the residuals
y_i - W_t x_i (and -W_t x_q in the query column), so one loop is exactly one (preconditioned) GD step
on L(W) = 1/(2n) sum ||W x_i - y_i||^2: `gd_construction` sets these weights by formula.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

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

    def forward(self, Z: torch.Tensor, T: int, n: int | None = None) -> torch.Tensor:
        """Z_T from Z_0 (B, d + m, n + k): the same LSA layer T times; the first n columns are the examples (keys),
        the last k (default 1) are queries, which never act as keys."""
        return torch.cat([Z[:, : self.d], _last(self._y_rows(Z, T, n))], dim=1)

    def _y_rows(self, Z: torch.Tensor, T: int, n: int | None = None) -> Iterator[torch.Tensor]:
        """The y-rows of Z_1, ..., Z_T, one loop at a time (so a caller that needs only Z_T holds one). A structured model's P writes only the y-rows, so the x-rows never change
        and (1/n) P (Z M Z^T) Q Z reduces to y-rows += p Y_keys K with K = X_keys^T A X / n fixed across loops
        (tested equal to `lsa`); full P, Q loop `lsa` itself."""
        check(isinstance(T, int) and T >= 1, f"T (number of loops) must be an integer >= 1, got {T!r}")
        P, Q = self.weights()
        n, d = Z.shape[2] - 1 if n is None else n, self.d
        if not self.structured:
            for _ in range(T):
                Z = lsa(Z, P, Q, n)
                yield Z[:, d:]
            return
        X, Y = Z[:, :d], Z[:, d:]
        K = X[:, :, :n].transpose(1, 2) @ Q[:d, :d] @ X / n  # (B, n, n + 1)
        p = P[d:, d:]
        for _ in range(T):
            Y = Y + p @ (Y[:, :, :n] @ K)
            yield Y

    def predict(self, p: Prompts, T: int) -> torch.Tensor:
        """yhat_q = -(y-rows of the query column after T loops). (B, m)"""
        validate_prompts(p, d=self.d, m=self.m)
        return -_last(self._y_rows(embed(p).to(self.P.dtype), T))[:, :, -1]

    def trajectory(self, p: Prompts, T: int, queries: torch.Tensor | None = None) -> torch.Tensor:
        """The prediction after every loop 1..T, in one pass: for the prompt's query (B, T, m), or for each of
        `queries` (B, k, d) placed as k query columns side by side (B, T, k, m)."""
        validate_prompts(p, d=self.d, m=self.m)
        if queries is None:
            return torch.stack([-Y[:, :, -1] for Y in self._y_rows(embed(p).to(self.P.dtype), T)], dim=1)
        B, n, k = p.X.shape[0], p.X.shape[1], queries.shape[1]
        Z = torch.cat([torch.cat([p.X, queries], dim=1), torch.cat([p.Y, p.Y.new_zeros(B, k, self.m)], dim=1)], dim=2)
        rows = self._y_rows(Z.transpose(1, 2).to(self.P.dtype), T, n)
        return torch.stack([-Y[:, :, n:].transpose(1, 2) for Y in rows], dim=1)


def _last(rows: Iterator[torch.Tensor]) -> torch.Tensor:
    return deque(rows, maxlen=1)[0]


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
    eye = torch.eye(d, dtype=p.X.dtype).expand(B, d, d)
    return model.trajectory(p, T, queries=eye)[:, -1].transpose(1, 2)  # answer to e_j is column j of W_T


def learned_preconditioner(model: LinearLoopedTransformer) -> torch.Tensor:
    """M (d, d) such that one loop of a structured model with m = 1 is W <- W + (1/n) R^T X M.

    The y-row of token i moves by (1/n) p (R^T X) A x_i with p = P[y, y] and A = Q[x, x]; since that row
    holds y_i - W x_i, W moves by -(1/n) p R^T X A: M = -p A (the construction has p = 1, A = -eta Gamma).
    """
    check(model.structured and model.m == 1, "the preconditioner reading needs a structured model with m = 1")
    P, Q = model.weights()
    d = model.d
    return (-P[d, d] * Q[:d, :d]).detach().double()
