"""`tenfold liber ...`: LIBER's verbs. Heavy imports happen inside the commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, run_standard, seed_option
from tenfold.core.errors import InputError, SchemaError

app = typer.Typer(help="LIBER: lifelong user behaviour -> streaming partitions -> cascaded LLM summaries -> CTR fusion.",
                  no_args_is_help=True)
add_standard_commands(app, "liber", reproduce=False)  # liber's reproduce takes the LLM options

DATA = typer.Option("auto", "--data", help="ml-100k (installed recbole), synthetic[:N], auto, or a folder of RecBole "
                                           "atomic files (e.g. ml-1m).")
LLM = typer.Option("rules", "--llm", help="rules (offline rule-based stand-in, not an LLM), openai or transformers.")
LLM_URL = typer.Option(None, "--llm-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.")
LLM_MODEL = typer.Option(None, "--llm-model", help="Model name the server serves (openai); a folder or zoo name "
                                                   "(transformers).")
LLM_FIELDS = typer.Option("json", "--llm-fields", help="json: ask for the structured interest fields as JSON "
                                                       "(validated, retried); none: the text alone.")
CACHE = typer.Option(None, "--cache", help="SQLite answer cache (default: one file per model under $TENFOLD_HOME/liber).")
RULE = typer.Option("count:20", "--rule", help="Partition rule: count:K, time:SECONDS[:MAXLEN], shift:TAU[:MIN[:MAX]], "
                                               "combined with | (any) or & (all).")
SPLIT = typer.Option("users", "--split", help="users: users split 81/9/10, no user-ID feature (the lineage's "
                                              "setting); time: per-user time split 80/10/10 with the user ID.")
TIMEOUT = typer.Option(60.0, "--llm-timeout", help="Seconds per HTTP request (openai backend), 0 < T <= 3600.")
CONCURRENCY = typer.Option(4, "--llm-concurrency", min=1, max=256, help="Parallel requests (openai backend), 1-256.")
MAX_TOKENS = typer.Option(512, "--llm-max-tokens", min=1, max=32768,
                          help="Longest answer, in tokens (openai and transformers), 1-32768.")
RETRIES = typer.Option(3, "--llm-retries", min=0, max=10, help="Tries after the first on a network error, timeout, "
                                                               "429/5xx or a malformed reply, waiting 1, 2, 4, ... s "
                                                               "(openai backend), 0-10.")
MAX_USERS = typer.Option(None, "--max-users", min=3, max=10_000_000, help="Only the first N users (by id), N >= 3.")


def _fields(value: str) -> bool:
    if value not in ("json", "none"):
        raise InputError(f"--llm-fields must be json or none, got {value!r}")
    return value == "json"


def _llm_options(llm: str, url: str | None, model: str | None, timeout: float, concurrency: int, max_tokens: int,
                 fields: str, retries: int = 3) -> dict:
    """The settings `experiment.reproduce(llm=...)` and `_generator` take."""
    if not (math.isfinite(timeout) and 0 < timeout <= 3600):
        raise InputError(f"--llm-timeout must be a number of seconds in (0, 3600], got {timeout}")
    options: dict = {"llm": llm, "url": url, "model": model, "fields": _fields(fields)}
    if llm == "openai":
        options.update(timeout=timeout, concurrency=concurrency, max_tokens=max_tokens, retries=retries)
    elif llm == "transformers":
        options.update(max_new_tokens=max_tokens)
    return options


def _generator(options: dict, cache: Path | None):
    from tenfold.core.io import cache_dir
    from tenfold.liber.llm import make_generator
    from tenfold.liber.pipeline import open_generator

    extra = {k: v for k, v in options.items() if k not in ("llm", "url", "model", "fields")}
    gen = make_generator(options["llm"], options["url"], options["model"], **extra)
    if cache is None:
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in gen.model_id)
        cache = cache_dir("liber") / f"{safe}.sqlite"
    return open_generator(gen, cache)


def _read_interests(path: Path, record_type) -> dict[str, list]:
    """The summaries an earlier `summarize` wrote to PATH (one JSON object per line), by user."""
    expected = "one JSON object per line, as `tenfold liber summarize` writes"
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise SchemaError(f"{path} is not UTF-8 text (expected {expected}): delete it or pass another --out") from err
    known: dict[str, list] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            known.setdefault(str(d["user"]), []).append(record_type.from_dict(d))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise SchemaError(f"{path} line {n} is not an interest record ({type(err).__name__}: {str(err)[:80]}; "
                              f"expected {expected}): delete it or pass another --out") from err
    return known


def _usage_line(gen) -> str:
    if not gen.usage:
        return ""
    u = gen.usage
    return (f"; tokens in {u['prompt_tokens']:,}, out {u['completion_tokens']:,} over {u['requests']} requests "
            f"({u['seconds']:.1f} s)")


@app.command("reproduce")
def reproduce(
    profile: str = typer.Option("quick", help="smoke (seconds), quick (2 CPU cores) or full (GPU / long night)."),
    out: Path = typer.Option(Path("reports"), help="Output folder; the result goes to OUT/liber/result.json."),
    seed: int = seed_option("Seed for every random choice (the first seed when several)."),
    seeds: int = typer.Option(None, help="How many seeds (seed, seed+1, ...); default: the profile's."),
    data: str = typer.Option(None, "--data", help="Override the profile's data: ml-100k, synthetic[:N] or a folder of "
                                                  "atomic files (e.g. RecBole's ml-1m)."),
    max_users: int = MAX_USERS,
    llm: str = LLM, llm_url: str = LLM_URL, llm_model: str = LLM_MODEL, llm_fields: str = LLM_FIELDS,
    llm_timeout: float = TIMEOUT, llm_concurrency: int = CONCURRENCY, llm_max_tokens: int = MAX_TOKENS,
    llm_retries: int = RETRIES,
) -> None:
    """Reproduce the paper's claims on this machine and write result.json + plots (summaries from the
    rule stand-in unless --llm names a real model)."""
    checked = _llm_options(llm, llm_url, llm_model, llm_timeout, llm_concurrency, llm_max_tokens, llm_fields,
                           llm_retries)
    options = None if llm == "rules" else checked
    if options is None and (llm_url or llm_model):
        raise InputError("--llm-url/--llm-model need --llm openai or --llm transformers")
    if data is not None:
        from tenfold.liber.pipeline import check_data

        check_data(data)
    run_standard("liber", "reproduce", profile, out, seed, seeds, data=data, llm=options, max_users=max_users)


@app.command()
def partition(data: str = DATA, rule: str = RULE,
              state: Path = typer.Option(Path("liber-state.json"), help="UBSP state (JSON); updated in place."),
              until: float = typer.Option(None, help="Only absorb behaviours up to this timestamp (simulate a stream)."),
              max_users: int = typer.Option(None, "--max-users", min=1, max=10_000_000,
                                            help="Only the first N users (by id).")):
    """Absorb the behaviour stream into per-user partitions (incremental: only events not yet in STATE, whose rule is kept)."""
    from tenfold.core.io import atomic_write_text
    from tenfold.core.runtime import work_starts
    from tenfold.liber.interests import ItemCatalog
    from tenfold.liber.partition import StreamingPartitioner, parse_rule
    from tenfold.liber.pipeline import load_data

    if until is not None and not math.isfinite(until):
        raise InputError(f"--until must be a finite timestamp, got {until}")
    part = StreamingPartitioner.load(state) if state.exists() else StreamingPartitioner(parse_rule(rule))
    ds, synthetic = load_data(data)
    catalog = ItemCatalog.from_frame(ds.item)
    work_starts("partitioning")
    closed = 0
    for k, (user, rows) in enumerate(ds.inter.groupby(ds.inter["user_id"].astype(str), sort=True)):
        if max_users is not None and k >= max_users:
            break
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
              out: Path = typer.Option(Path("liber-interests.jsonl"), help="Interests, one JSON line per partition."),
              cascade: bool = typer.Option(True, help="--no-cascade summarises each partition alone (ablation)."),
              domain: str = typer.Option("movie", help="Prompt template: movie, book or music."),
              llm_fields: str = LLM_FIELDS, llm_timeout: float = TIMEOUT, llm_concurrency: int = CONCURRENCY,
              llm_max_tokens: int = MAX_TOKENS, llm_retries: int = RETRIES):
    """UIL: summarise every closed partition not yet in OUT (cascade + shift + fields), through the answer cache."""
    from tenfold.core.io import atomic_write_text
    from tenfold.core.runtime import work_starts
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
    part = StreamingPartitioner.load(state)
    ds, _ = load_data(data)
    users = ds.user.set_index(ds.user["user_id"].astype(str)) if ds.user is not None else None
    groups = ds.name.startswith("ml-1m")
    profiles = {u: profile_sentence(users.loc[u] if users is not None and u in users.index else None, groups)
                for u in part.users}
    known = _read_interests(out, InterestRecord) if out.exists() else {}
    gen = _generator(_llm_options(llm, llm_url, llm_model, llm_timeout, llm_concurrency, llm_max_tokens, llm_fields,
                                  llm_retries), cache)
    work_starts("interest learning")
    try:
        store = learn_interests({u: s.partitions for u, s in part.users.items()}, gen, ItemCatalog.from_frame(ds.item),
                                profiles, TEMPLATES[domain], cascade=cascade, known=known, fields=_fields(llm_fields))
    finally:
        typer.echo(f"new LLM calls {gen.calls}, cache hits {gen.hits} (model {gen.model_id}, cache {gen.cache.path})"
                   f"{_usage_line(gen)}", err=True)
    lines = [json.dumps({"user": u, **r.to_dict()}) for u, records in store.items() for r in records]
    atomic_write_text(out, "\n".join(lines) + "\n")
    typer.echo(f"{len(lines)} partition summaries -> {out}; new LLM calls {gen.calls}, cache hits {gen.hits} "
               f"(model {gen.model_id})")


@app.command()
def train(data: str = DATA, backbone: str = typer.Option("din", help="din, dcnv2 or deepfm."),
          variant: str = typer.Option("liber", help="liber, liber-nocascade, kar or base (backbone alone)."),
          rule: str = RULE, split: str = SPLIT, llm: str = LLM, llm_url: str = LLM_URL, llm_model: str = LLM_MODEL,
          cache: Path = CACHE, out: Path = typer.Option(Path("liber-model"), help="Folder for model.safetensors + model.json."),
          epochs: int = typer.Option(4, min=1, max=1000, help="Training epochs (best validation AUC is kept), 1-1000."),
          encoder: str = typer.Option("hashing", help="hashing (default) or a local sentence-transformer folder."),
          text_dim: int = typer.Option(32, "--text-dim", min=2, max=1024,
                                       help="Width of the hashing encoder's text vectors, 2-1024."),
          max_users: int = MAX_USERS, seed: int = seed_option(), llm_fields: str = LLM_FIELDS, llm_timeout: float = TIMEOUT,
          llm_concurrency: int = CONCURRENCY, llm_max_tokens: int = MAX_TOKENS, llm_retries: int = RETRIES):
    """Train a backbone with LIBER (or a baseline variant) and save it with its test metrics."""
    from dataclasses import replace

    from tenfold.core.runtime import work_starts
    from tenfold.liber.backbones import BACKBONES
    from tenfold.liber.partition import parse_rule
    from tenfold.liber.pipeline import (
        VARIANTS,
        LiberConfig,
        build_model,
        d_in_of,
        first_users,
        load_data,
        model_kind,
        save_model,
        text_tables,
    )
    from tenfold.liber.samples import build_ctr_data
    from tenfold.liber.training import evaluate, fit

    if backbone not in BACKBONES:
        raise InputError(f"--backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    if variant not in VARIANTS:
        raise InputError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if encoder != "hashing" and not (Path(encoder) / "config.json").is_file():
        raise InputError(f"--encoder must be hashing or a local sentence-transformer folder (with config.json), "
                         f"got {encoder!r}")
    cfg = replace(LiberConfig(), rule=rule, epochs=epochs, encoder=encoder, text_dim=text_dim, split=split,
                  fields=_fields(llm_fields))
    options = _llm_options(llm, llm_url, llm_model, llm_timeout, llm_concurrency, llm_max_tokens, llm_fields,
                           llm_retries)
    gen = _generator(options, cache)
    ds, synthetic = load_data(data, seed)
    ds = first_users(ds, max_users)
    ctr = build_ctr_data(ds, parse_rule(cfg.rule), cfg.hist_len, cfg.max_partitions, split=cfg.split, seed=seed)
    work_starts("interest learning and training")
    tables = text_tables(ctr, gen, cfg, (variant,), seed)[variant]
    model = build_model(model_kind(variant), backbone, ctr, cfg, d_in_of(tables, cfg.text_dim), seed)
    history = fit(model, ctr, tables, cfg.epochs, cfg.batch_size, cfg.lr, seed, desc=f"{backbone}+{variant}")
    metrics = {"valid": evaluate(model, ctr, tables, "valid"), "test": evaluate(model, ctr, tables, "test")}
    meta = {"schema": "tenfold.liber.model/2", "config": cfg.to_dict(), "data": data, "dataset": ds.name,
            "max_users": max_users, "synthetic": synthetic, "backbone": backbone, "variant": variant, "seed": seed,
            "llm": {**options, "cache": str(gen.cache.path), "model_id": gen.model_id}, "metrics": metrics,
            "history": history}
    save_model(out, model, meta)
    typer.echo(json.dumps({"test": metrics["test"], "llm_calls": gen.calls, "cache_hits": gen.hits,
                           "llm_usage": gen.usage, "out": str(out)}))


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
        d_in_of,
        first_users,
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
    ds = first_users(ds, meta.get("max_users"))
    ctr = build_ctr_data(ds, parse_rule(cfg.rule), cfg.hist_len, cfg.max_partitions, split=cfg.split, seed=meta["seed"])
    options = {k: v for k, v in meta["llm"].items() if k not in ("cache", "model_id")}
    gen = _generator(options, Path(meta["llm"]["cache"]))
    tables = text_tables(ctr, gen, cfg, (meta["variant"],), meta["seed"])[meta["variant"]]
    net = build_model(model_kind(meta["variant"]), meta["backbone"], ctr, cfg, d_in_of(tables, cfg.text_dim), meta["seed"])
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise InputError(f"the weights in {model} do not fit this data (different users/items?): {str(err)[:200]}") from err
    typer.echo(json.dumps({split: eval_model(net, ctr, tables, split), "new_llm_calls": gen.calls, "cache_hits": gen.hits}))
