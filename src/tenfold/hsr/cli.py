"""`tenfold hsr ...`: validate (exactness on your keys or random ones), dump-keys (post-RoPE caches of a
LLaMA-class model), compare (every method on a dump), bench, reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import InputError
from tenfold.core.runtime import work_starts

MAX_RANDOM_COORDS = 2**26  # validate's random keys: n x d coordinates (each tensor 256 MiB at most)

app = typer.Typer(help="HSR-enhanced sparse attention (Chen et al. 2024): exact half-space reporting for ReLU^alpha "
                       "attention and top-r softmax; real KV-cache dumps and every method on them.",
                  no_args_is_help=True)
add_standard_commands(app, "hsr")


def _positive(name: str, value: float, upper: float | None = None) -> None:
    if not (value == value and value > 0 and (upper is None or value <= upper)):  # NaN fails value == value
        raise InputError(f"--{name} must be positive{'' if upper is None else f' and at most {upper:g}'}, got {value}")


@app.command("validate")
def validate(
    keys: Path = typer.Option(None, help="A safetensors file: a dump from `hsr dump-keys`, or tensors 'keys' (n, d) "
                              "and optionally 'values', 'queries'."),
    n: int = typer.Option(20000, help="Random keys when --keys is not given."),
    d: int = typer.Option(32, help="Key dimension for random keys."),
    alpha: int = typer.Option(2, help="ReLU exponent (a positive integer)."),
    bias: float = typer.Option(0.5, help="ReLU bias b."),
    queries: int = typer.Option(16, help="Random queries when the file has none."),
    seed: int = seed_option("Seed of the random keys, values and queries."),
) -> None:
    """Check that every index reports exactly the keys of each half-space and matches dense ReLU attention."""
    import torch

    from tenfold.core.io import load_tensors
    from tenfold.hsr.attention import relu_attention
    from tenfold.hsr.baselines import BlockBound
    from tenfold.hsr.index import HalfSpaceIndex, check_keys
    from tenfold.hsr.lowrank import LowRankBlockIndex

    _positive("n", n, 10**8)
    _positive("d", d, 4096)
    _positive("queries", queries, 10**5)
    _positive("alpha", alpha, 16)
    if not bias == bias or abs(bias) == float("inf"):
        raise InputError(f"--bias must be a finite number, got {bias}")
    if keys is None and n * d > MAX_RANDOM_COORDS:
        raise InputError(f"--n x --d is {n * d:,} key coordinates, more than {MAX_RANDOM_COORDS:,} (256 MiB of "
                         "float32 keys): lower --n or --d")
    gen = torch.Generator().manual_seed(seed)
    if keys is not None:
        t = load_tensors(keys)
        if "keys" not in t:
            raise InputError(f"{keys} has no tensor named 'keys' (found {sorted(t)})")
        K = t["keys"].float()
        if K.dim() == 4:  # a dump: layer 0, kv-head 0
            t = {k: v[0, 0].float() for k, v in t.items() if v.dim() == 4}
            K = t["keys"]
        K = check_keys(K)
        V = t.get("values", torch.randn(K.shape[0], K.shape[1], generator=gen)).float()
        Q = t.get("queries", torch.randn(queries, K.shape[1], generator=gen)).float()[:queries]
        if V.shape[0] != K.shape[0] or Q.shape[1] != K.shape[1]:
            raise InputError(f"{keys}: values {tuple(V.shape)} and queries {tuple(Q.shape)} do not match keys {tuple(K.shape)}")
    else:
        K, V, Q = (torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen), torch.randn(queries, d, generator=gen))
    work_starts("the validation")
    scale = K.shape[1] ** -0.5
    report = {"keys": list(K.shape), "queries": len(Q)}
    failed = False
    for name, index in (("hsr_tree", HalfSpaceIndex(K)), ("quest_blocks", BlockBound(K, 16)),
                        ("lowrank_blocks", LowRankBlockIndex(K, max(1, K.shape[1] // 4), 16)),
                        ("lowrank_keys", LowRankBlockIndex(K, max(1, K.shape[1] // 2), 1))):
        wrong, scored, worst = 0, 0, 0.0
        for q in Q:
            ref_ids = torch.nonzero(K.double() @ (scale * q.double()) > bias + 1e-5 * abs(bias) + 1e-6).flatten()
            got = index.report(scale * q, bias)[0]
            wrong += int((~torch.isin(ref_ids, got)).sum())
            scored += index.last_stats.scored
            a = relu_attention(q, K, V, alpha, bias, index=index, dense_fraction=1.0)
            r = relu_attention(q.double(), K.double(), V.double(), alpha, bias)
            if r.abs().max() > 0:
                worst = max(worst, float((a.double() - r).abs().max() / r.abs().max()))
        report[name] = {"missed_keys": wrong, "scored_fraction": scored / (len(Q) * len(K)), "relu_max_rel_err": worst}
        failed |= wrong > 0
    typer.echo(json.dumps(report, indent=2))
    if failed:
        raise typer.Exit(1)


@app.command("dump-keys")
def dump_keys(
    model: str = typer.Option(..., help="A Hugging Face LLaMA-class model folder, or a zoo name (tiny-lm, tiny-lm-long)."),
    text: str = typer.Option("python-docs", help="A UTF-8 text file, or python-docs / python-topics (their validation "
                             "split: text the zoo models never trained on)."),
    tokens: int = typer.Option(4096, help="Tokens of text to run through the model (the cache size)."),
    out: Path = typer.Option(Path("keys.safetensors"), help="Output safetensors file."),
    chunk: int = typer.Option(1024, help="Tokens per forward pass (the cache grows chunk by chunk)."),
) -> None:
    """Dump post-RoPE queries, keys and values per (layer, head) of the model's KV cache over real text."""
    from tenfold.core.io import ensure_writable_dir
    from tenfold.hsr.keys import dump_keys as dump
    from tenfold.hsr.keys import load_model, save_dump, text_tokens

    _positive("tokens", tokens, 10**7)
    _positive("chunk", chunk, 10**6)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder: give a file name such as keys.safetensors")
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    m, tok, context, label = load_model(model)
    ids, source = text_tokens(tok, text, tokens)
    result = dump(m, ids, chunk=chunk, metadata={"model": label, "text": source, "training_context": context})
    save_dump(result, out)
    typer.echo(f"{out.resolve()}: queries {tuple(result.queries.shape)}, keys {tuple(result.keys.shape)} "
               f"({label}, trained to {context} tokens; {tokens:,} tokens of {source})")


@app.command("compare")
def compare(
    dump: Path = typer.Argument(..., help="A dump from `tenfold hsr dump-keys`."),
    ns: str = typer.Option(None, help="Comma-separated cache sizes (default: powers of 2 from 4096 up to the dump's "
                           "length minus the queries)."),
    queries: int = typer.Option(16, help="Query positions after each cache."),
    alpha: int = typer.Option(1, help="ReLU exponent."),
    out: Path = typer.Option(None, help="Write the full table (per head and query) to this JSON file."),
) -> None:
    """Every method (HSR tree, dense ReLU^alpha, SDPA, top-k scan, Quest blocks, low-rank index) on the dump's caches."""
    from tenfold.core.io import atomic_write_json, ensure_writable_dir
    from tenfold.hsr.keys import load_dump
    from tenfold.hsr.realkeys import RealKeyConfig, evaluate_dump

    _positive("queries", queries, 10**5)
    _positive("alpha", alpha, 16)
    if out is not None:
        if out.is_dir():
            raise InputError(f"--out {out} is a folder: give a JSON file name")
        ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    keys = load_dump(dump)
    if ns is None:
        sizes = tuple(2**e for e in range(12, 40) if 2**e + queries <= keys.n) or (keys.n - queries,)
    else:
        try:
            sizes = tuple(int(v) for v in ns.split(","))
        except ValueError as err:
            raise InputError(f"--ns must be comma-separated integers, got {ns!r}") from err
    if not sizes or min(sizes) < 2 or max(sizes) + queries > keys.n:
        raise InputError(f"cache sizes {sizes} plus {queries} queries must fit in the dump's {keys.n} positions")
    result = evaluate_dump(keys, RealKeyConfig(ns=sizes, queries=queries, alpha=alpha))
    if out is not None:
        atomic_write_json(out, {**result, "dump": keys.metadata})
    typer.echo(json.dumps({"dump": keys.metadata, "summary": result["summary"], "max_rel_err": result["max_rel_err"],
                           "missed_keys_total": result["missed_keys_total"]}, indent=2))
