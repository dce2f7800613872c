"""`tenfold hsr ...`: validate (exactness on your keys or random ones), bench, reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands
from tenfold.core.errors import InputError

app = typer.Typer(help="HSR-enhanced sparse attention (Chen et al. 2024): exact half-space reporting for ReLU^alpha "
                       "attention and top-r softmax.", no_args_is_help=True)
add_standard_commands(app, "hsr")


@app.command("validate")
def validate(
    keys: Path = typer.Option(None, help="A safetensors file with tensors 'keys' (n, d) and optionally 'values', 'queries'."),
    n: int = typer.Option(20000, help="Random keys when --keys is not given."),
    d: int = typer.Option(32, help="Key dimension for random keys."),
    alpha: int = typer.Option(2, help="ReLU exponent (a positive integer)."),
    bias: float = typer.Option(0.5, help="ReLU bias b."),
    queries: int = typer.Option(16, help="Random queries when the file has none."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Check that HSR reports exactly the keys of each half-space and matches dense ReLU attention."""
    import torch

    from tenfold.core.io import load_tensors
    from tenfold.hsr.attention import relu_attention
    from tenfold.hsr.index import HalfSpaceIndex

    gen = torch.Generator().manual_seed(seed)
    if keys is not None:
        t = load_tensors(keys)
        if "keys" not in t:
            raise InputError(f"{keys} has no tensor named 'keys' (found {sorted(t)})")
        K = t["keys"].float()
        V = t.get("values", torch.randn(K.shape[0], K.shape[1], generator=gen)).float()
        Q = t.get("queries", torch.randn(queries, K.shape[1], generator=gen)).float()
    else:
        K, V, Q = (torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen), torch.randn(queries, d, generator=gen))
    index = HalfSpaceIndex(K)
    scale = K.shape[1] ** -0.5
    mismatched, touched, worst = 0, 0, 0.0
    for q in Q:
        got = index.query(scale * q, bias)
        ref = torch.nonzero(K @ (scale * q) > bias).flatten()
        mismatched += int(not torch.equal(got, ref))
        touched += index.last_stats.scored
        a = relu_attention(q, K, V, alpha, bias, index=index)
        r = relu_attention(q.double(), K.double(), V.double(), alpha, bias)
        if r.abs().max() > 0:
            worst = max(worst, float((a.double() - r).abs().max() / r.abs().max()))
    typer.echo(json.dumps({"keys": list(K.shape), "queries": len(Q), "queries_with_wrong_set": mismatched,
                           "scored_fraction": touched / (len(Q) * len(K)), "relu_max_rel_err": worst}, indent=2))
    if mismatched:
        raise typer.Exit(1)
