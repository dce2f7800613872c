"""`tenfold liber ...`: LIBER's verbs. Heavy imports happen inside the commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands
from tenfold.core.errors import InputError

app = typer.Typer(help="LIBER: lifelong user behaviour -> streaming partitions -> cascaded LLM summaries -> CTR fusion.",
                  no_args_is_help=True)
add_standard_commands(app, "liber")

DATA = typer.Option("auto", "--data", help="ml-100k (installed recbole), synthetic, auto, or a folder of atomic files.")
LLM = typer.Option("rules", "--llm", help="rules (offline rule-based stand-in, not an LLM), openai or transformers.")
LLM_URL = typer.Option(None, "--llm-url", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (vLLM).")
LLM_MODEL = typer.Option(None, "--llm-model", help="Model name for openai; path or zoo name (tiny-lm) for transformers.")
CACHE = typer.Option(None, "--cache", help="SQLite answer cache (default: one file per model under $TENFOLD_HOME/liber).")
RULE = typer.Option("count:20", "--rule", help="Partition rule: count:K, time:SECONDS[:MAXLEN], shift:TAU[:MIN[:MAX]], "
                                               "combined with | (any) or & (all).")
TIMEOUT = typer.Option(60.0, "--llm-timeout", help="Seconds per HTTP request (openai backend).")
CONCURRENCY = typer.Option(4, "--llm-concurrency", help="Parallel requests (openai backend).")


def _generator(llm: str, url: str | None, model: str | None, cache: Path | None, timeout: float, concurrency: int):
    from tenfold.core.io import cache_dir
    from tenfold.liber.llm import make_generator
    from tenfold.liber.pipeline import open_generator

    options = {"timeout": timeout, "concurrency": concurrency} if llm == "openai" else {}
    gen = make_generator(llm, url, model, **options)
    if cache is None:
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in gen.model_id)
        cache = cache_dir("liber") / f"{safe}.sqlite"
    return open_generator(gen, cache)


@app.command()
def partition(data: str = DATA, rule: str = RULE,
              state: Path = typer.Option(Path("liber-state.json"), help="UBSP state (JSON); updated in place."),
              until: float = typer.Option(None, help="Only absorb behaviours up to this timestamp (simulate a stream).")):
    """Absorb the behaviour stream into per-user partitions (incremental: only events not yet in STATE, whose rule is kept)."""
    from tenfold.core.io import atomic_write_text
    from tenfold.liber.interests import ItemCatalog
    from tenfold.liber.partition import StreamingPartitioner, parse_rule
    from tenfold.liber.pipeline import load_data

    ds, synthetic = load_data(data)
    catalog = ItemCatalog.from_frame(ds.item)
    part = StreamingPartitioner.from_json(state.read_text()) if state.exists() else StreamingPartitioner(parse_rule(rule))
    closed = 0
    for user, rows in ds.inter.groupby(ds.inter["user_id"].astype(str), sort=True):
        stream = part.users.get(user)
        known = 0 if stream is None else sum(len(p.behaviors) for p in stream.partitions) + len(stream.cache)
        rows = rows.iloc[known:]
        if until is not None:
            rows = rows[rows["timestamp"] <= until]
        closed += len(part.extend(user, catalog.behaviors(rows["item_id"], rows["timestamp"], rows["rating"])))
    atomic_write_text(state, part.to_json())
    total = sum(len(s.partitions) for s in part.users.values())
    typer.echo(f"{ds.name}{' (synthetic)' if synthetic else ''}: {len(part.users)} users, {total} closed partitions "
               f"({closed} new), state -> {state}")


@app.command()
def summarize(state: Path = typer.Option(Path("liber-state.json"), help="UBSP state from `liber partition`."),
              data: str = DATA, llm: str = LLM, llm_url: str = LLM_URL, llm_model: str = LLM_MODEL, cache: Path = CACHE,
              out: Path = typer.Option(Path("liber-interests.jsonl"), help="Interest texts, one JSON line per partition."),
              cascade: bool = typer.Option(True, help="--no-cascade summarises each partition alone (ablation)."),
              domain: str = typer.Option("movie", help="Prompt template: movie, book or music."),
              llm_timeout: float = TIMEOUT, llm_concurrency: int = CONCURRENCY):
    """UIL: summarise every closed partition not yet in OUT (cascade + shift), through the answer cache."""
    from tenfold.core.io import atomic_write_text
    from tenfold.liber.interests import (
        TEMPLATES,
        InterestRecord,
        ItemCatalog,
        learn_interests,
        profile_sentence,
    )
    from tenfold.liber.partition import StreamingPartitioner
    from tenfold.liber.pipeline import load_data

    if domain not in TEMPLATES:
        raise InputError(f"--domain must be one of {', '.join(TEMPLATES)}, got {domain!r}")
    if not state.exists():
        raise InputError(f"no UBSP state at {state}: run `tenfold liber partition --state {state}` first")
    part = StreamingPartitioner.from_json(state.read_text())
    ds, _ = load_data(data)
    users = ds.user.set_index(ds.user["user_id"].astype(str)) if ds.user is not None else None
    profiles = {u: profile_sentence(users.loc[u] if users is not None and u in users.index else None) for u in part.users}
    known: dict[str, list] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            d = json.loads(line)
            known.setdefault(d["user"], []).append(InterestRecord(d["pid"], d["closed_at"], d["summary"], d["shift"]))
    gen = _generator(llm, llm_url, llm_model, cache, llm_timeout, llm_concurrency)
    store = learn_interests({u: s.partitions for u, s in part.users.items()}, gen, ItemCatalog.from_frame(ds.item),
                            profiles, TEMPLATES[domain], cascade=cascade, known=known)
    lines = [json.dumps({"user": u, "pid": r.pid, "closed_at": r.closed_at, "summary": r.summary, "shift": r.shift})
             for u, records in store.items() for r in records]
    atomic_write_text(out, "\n".join(lines) + "\n")
    typer.echo(f"{len(lines)} partition summaries -> {out}; new LLM calls {gen.calls}, cache hits {gen.hits} "
               f"(model {gen.model_id})")


@app.command()
def train(data: str = DATA, backbone: str = typer.Option("din", help="din, dcnv2 or deepfm."),
          variant: str = typer.Option("liber", help="liber, liber-nocascade, kar or base (backbone alone)."),
          rule: str = RULE, llm: str = LLM, llm_url: str = LLM_URL, llm_model: str = LLM_MODEL, cache: Path = CACHE,
          out: Path = typer.Option(Path("liber-model"), help="Folder for model.safetensors + model.json."),
          epochs: int = typer.Option(4, help="Training epochs (best validation AUC is kept)."),
          encoder: str = typer.Option("hashing", help="hashing (default) or a local sentence-transformer folder."),
          seed: int = typer.Option(0, help="Seed."), llm_timeout: float = TIMEOUT, llm_concurrency: int = CONCURRENCY):
    """Train a backbone with LIBER (or a baseline variant) and save it with its test metrics."""
    from dataclasses import replace

    from tenfold.liber.partition import parse_rule
    from tenfold.liber.pipeline import (
        LiberConfig,
        build_model,
        d_text_of,
        load_data,
        model_kind,
        save_model,
        text_tables,
    )
    from tenfold.liber.samples import build_ctr_data
    from tenfold.liber.training import evaluate, fit

    cfg = replace(LiberConfig(), rule=rule, epochs=epochs, encoder=encoder)
    gen = _generator(llm, llm_url, llm_model, cache, llm_timeout, llm_concurrency)
    ds, synthetic = load_data(data, seed)
    ctr = build_ctr_data(ds, parse_rule(cfg.rule), cfg.hist_len, cfg.max_partitions)
    tables = text_tables(ctr, gen, cfg, (variant,), seed)[variant]
    model = build_model(model_kind(variant), backbone, ctr, cfg, d_text_of(tables, cfg.text_dim), seed)
    history = fit(model, ctr, tables, cfg.epochs, cfg.batch_size, cfg.lr, seed, desc=f"{backbone}+{variant}")
    metrics = {"valid": evaluate(model, ctr, tables, "valid"), "test": evaluate(model, ctr, tables, "test")}
    meta = {"schema": "tenfold.liber.model/1", "config": cfg.to_dict(), "data": data, "dataset": ds.name,
            "synthetic": synthetic, "backbone": backbone, "variant": variant, "seed": seed,
            "llm": {"llm": llm, "url": llm_url, "model": llm_model, "cache": str(cache) if cache else None,
                    "model_id": gen.model_id}, "metrics": metrics, "history": history}
    save_model(out, model, meta)
    typer.echo(json.dumps({"test": metrics["test"], "llm_calls": gen.calls, "cache_hits": gen.hits, "out": str(out)}))


@app.command()
def evaluate(model: Path = typer.Option(Path("liber-model"), "--model", help="Folder written by `liber train`."),
             split: str = typer.Option("test", help="train, valid or test."),
             data: str = typer.Option(None, "--data", help="Override the data the model was trained on (same schema).")):
    """Reload a trained model (its texts come back from the answer cache) and report AUC, LogLoss, GAUC."""
    from dataclasses import replace

    from tenfold.liber.partition import parse_rule
    from tenfold.liber.pipeline import (
        LiberConfig,
        build_model,
        d_text_of,
        load_data,
        load_model_meta,
        model_kind,
        text_tables,
    )
    from tenfold.liber.samples import SPLITS, build_ctr_data
    from tenfold.liber.training import evaluate as eval_model

    if split not in SPLITS:
        raise InputError(f"--split must be train, valid or test, got {split!r}")
    meta, weights = load_model_meta(model)
    cfg = replace(LiberConfig(), **meta["config"])
    ds, _ = load_data(data or meta["data"], meta["seed"])
    ctr = build_ctr_data(ds, parse_rule(cfg.rule), cfg.hist_len, cfg.max_partitions)
    llm = meta["llm"]
    gen = _generator(llm["llm"], llm["url"], llm["model"], Path(llm["cache"]) if llm["cache"] else None, 60.0, 4)
    tables = text_tables(ctr, gen, cfg, (meta["variant"],), meta["seed"])[meta["variant"]]
    net = build_model(model_kind(meta["variant"]), meta["backbone"], ctr, cfg, d_text_of(tables, cfg.text_dim), meta["seed"])
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise InputError(f"the weights in {model} do not fit this data (different users/items?): {str(err)[:200]}") from err
    typer.echo(json.dumps({split: eval_model(net, ctr, tables, split), "new_llm_calls": gen.calls, "cache_hits": gen.hits}))
