"""Sane bounds on every size and scale the looped verbs accept, checked at the boundary so that a huge value is
refused at once instead of hanging or allocating (no heavy imports: the CLI reads these at startup)."""

from __future__ import annotations

MAX_DIM = 512  # d and m
MAX_N = 10_000  # examples per prompt
MAX_T = 10_000  # loops (the paper's regime is tens to hundreds)
MAX_PROMPTS = 100_000  # prompts in one batch
# Sigma's smallest eigenvalue is 1/kappa: up to 1e6 its Cholesky factor is well-posed in float64 (relative
# round-off ~ kappa * 1e-16) and the prompts stay meaningful when a model trains on them in float32.
MAX_KAPPA = 1e6
MAX_NOISE = 1e3
MAX_STEPS = 1_000_000  # Adam steps
MAX_ELEMENTS = 10**8  # tensor elements one run may hold at once (800 MB in float64)
