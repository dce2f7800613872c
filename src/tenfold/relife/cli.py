"""`tenfold relife ...`: build lists, simulate clicks, train and evaluate re-rankers."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option

app = typer.Typer(help="RELIFE: re-ranking with list-level hybrid (clicked + unclicked) feedback (arXiv 2410.20778).",
                  no_args_is_help=True)
add_standard_commands(app, "relife")

DATA_HELP = "'ml-100k' (from the installed recbole package) or a folder of RecBole atomic files (.inter with rating)."
MAX_DRAWS = 1000  # simulator draws per test list: memory grows as lists x length x draws
# Sizes are bounded where they are defined (ListConfig, SimulatorConfig, TrainConfig, build_model): one
# InputError, before any work, names the setting and its range.


def _list_config(list_len: int, history: int, max_users: int | None, seed: int):
    from tenfold.data.lists import ListConfig

    return ListConfig(list_len=list_len, history_lists=history, max_users=max_users, seed=seed)


@app.command("build-lists")
def build_lists(
    out: Path = typer.Option(..., help="Folder for train/val/test lists (safetensors) and lists.json."),
    data: str = typer.Option("ml-100k", help=DATA_HELP),
    list_len: int = typer.Option(10, min=2, help="Items per exposure list (2 to 200)."),
    history: int = typer.Option(4, min=0, help="Earlier lists kept as history (0 to 50)."),
    max_users: int = typer.Option(None, min=1, help="Use only the first N users (quick trials)."),
    seed: int = seed_option("Seed of the initial ranker."),
) -> None:
    """Logged-label lists from real ratings (label rating >= 4, order from our MF initial ranker)."""
    from tenfold.core.io import ensure_writable_dir
    from tenfold.core.runtime import work_starts
    from tenfold.data.lists import build_logged_lists
    from tenfold.data.movielens import load_atomic

    cfg = _list_config(list_len, history, max_users, seed)
    dataset = load_atomic(data)
    ensure_writable_dir(out)
    work_starts("building the lists")
    splits = build_logged_lists(dataset, cfg)
    splits.save(out)
    typer.echo(f"{splits.info['train_lists']} train / {splits.info['val_lists']} val / {splits.info['test_lists']} "
               f"test lists -> {out}")


@app.command("simulate")
def simulate(
    out: Path = typer.Option(..., help="Folder for the simulated train/val/test lists."),
    data: str = typer.Option("ml-100k", help=DATA_HELP),
    beta: float = typer.Option(3.0, help="Mean substitution strength: beta_u is 0 or 2*beta per user (0 removes it; "
                                         "at most 100)."),
    eta: float = typer.Option(1.0, help="Position bias: P(examine position j) = (1/j)^eta (0 to 100)."),
    stop: float = typer.Option(0.5, help="Probability of stopping after a click (1 = cascade model)."),
    noise: float = typer.Option(0.5, help="Std of the initial ranker's fresh noise on logit r (0 to 100)."),
    taste_noise: float = typer.Option(1.0, help="Std of the initial ranker's per-(user, genre) error, the same in all "
                                                "of a user's lists (0 to 100)."),
    lists_per_user: int = typer.Option(8, min=3,
                                       help="Simulated lists per user (the last are test, one validation; at most 1,000)."),
    test_lists: int = typer.Option(3, min=1, help="Test lists per user."),
    list_len: int = typer.Option(10, min=2, help="Items per list (2 to 200)."),
    history: int = typer.Option(3, min=0, help="Earlier lists kept as history (0 to 50)."),
    max_users: int = typer.Option(None, min=1, help="Use only the first N users."),
    seed: int = seed_option("Seed of exposures, traits, clicks and the ground truth."),
) -> None:
    """Simulated exposures and clicks (frozen MF ground truth, PBM + cascade + per-user substitution)."""
    from tenfold.core.io import ensure_writable_dir
    from tenfold.core.runtime import work_starts
    from tenfold.data.lists import ClickModel, SimulatorConfig, build_simulated_lists, fit_ground_truth
    from tenfold.data.movielens import load_atomic

    sim = SimulatorConfig(lists_per_user=lists_per_user, test_lists=test_lists, beta=beta, ranker_noise=noise,
                          taste_noise=taste_noise, click=ClickModel(eta=eta, stop=stop), seed=seed)
    cfg = _list_config(list_len, history, max_users, seed)
    dataset = load_atomic(data)
    ensure_writable_dir(out)
    work_starts("simulating the lists")
    splits = build_simulated_lists(dataset, cfg, sim, truth=fit_ground_truth(dataset, cfg))
    splits.save(out)
    typer.echo(f"{splits.info['train_lists']} train / {splits.info['val_lists']} val / {splits.info['test_lists']} test "
               f"lists, click rate {splits.info['click_rate']:.3f} -> {out}")


@app.command("train")
def train(
    lists: Path = typer.Option(..., help="Folder written by build-lists or simulate."),
    out: Path = typer.Option(..., help="Folder for model.safetensors + model.json (and the checkpoint while training)."),
    model: str = typer.Option("relife", help="relife, relife-no-history, relife-clicks-only, relife-no-cpe, relife-no-cl, "
                                             "prm, dlcm, setrank, mir, initial."),
    signal: str = typer.Option(None, help="Training target: intent or ips (simulated lists), labels (default for logged)."),
    dim: int = typer.Option(16, min=1, help="Model width (1 to 1,024)."),
    max_epochs: int = typer.Option(5, min=1,
                                   help="Most epochs; training stops earlier when validation stops improving."),
    patience: int = typer.Option(2, min=1, help="Epochs without validation improvement before stopping."),
    batch_size: int = typer.Option(128, min=1,
                                   help="Lists per batch (the global batch under data parallelism)."),
    lr: float = typer.Option(1e-2, help="Adam learning rate, in (0, 10]."),
    contrastive: str = typer.Option("user", help="Contrastive reading: 'user' (a) or 'label' (b)."),
    cl_weight: float = typer.Option(0.01, help="Weight lambda of the contrastive loss, in [0, 100]."),
    seed: int = seed_option("Seed of initialisation and batch order."),
) -> None:
    """Train a re-ranker with early stopping; a killed run resumes from its checkpoint in OUT."""
    from tenfold.core.accel import device_summary
    from tenfold.core.io import Checkpoint, ensure_writable_dir
    from tenfold.core.runtime import seed_everything
    from tenfold.data.lists import ListSplits
    from tenfold.relife.train import TrainConfig, build_model, save_model, train_model

    cfg = TrainConfig(max_epochs=max_epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed)
    splits = ListSplits.load(lists)
    signal = signal or ("intent" if splits.train.meta.get("regime") == "simulated" else "labels")
    L, H = splits.train.mask.shape[1], splits.train.hist_mask.shape[1]
    build_model(model, splits.train.meta, L, H, dim=dim, contrastive=contrastive, cl_weight=cl_weight)  # checks the settings
    ensure_writable_dir(out)
    seed_everything(seed)
    net, history = train_model(model, splits, cfg, signal, dim=dim, contrastive=contrastive, cl_weight=cl_weight,
                               folder=out)
    spec = {"name": model, "meta": splits.train.meta, "list_len": L, "history_lists": H, "dim": dim, "heads": 1,
            "contrastive": contrastive, "cl_weight": cl_weight, "signal": signal, "train": cfg.__dict__, **history}
    save_model(net, out, spec)
    for stage in ("personal", "model"):
        Checkpoint(out, f"checkpoint-{stage}").clear()
    typer.echo(f"trained {model} on {len(splits.train)} lists ({signal}), best epoch {history['best_epoch']} -> {out}")
    typer.echo(device_summary())


@app.command("evaluate")
def evaluate(
    lists: Path = typer.Option(..., help="Folder written by build-lists or simulate."),
    model_dir: Path = typer.Option(..., "--model", help="Folder written by `tenfold relife train`."),
    out: Path = typer.Option(None, help="Write the metrics as JSON here (default: print only)."),
    draws: int = typer.Option(16, min=1, max=MAX_DRAWS, help="Simulator draws per test list (simulated lists)."),
    seed: int = seed_option("Seed of the simulator's evaluation draws."),
) -> None:
    """NDCG@5 / MAP@5 on the test split (simulated lists: on intent and on clicks, plus expected clicks)."""
    from tenfold.core.io import atomic_write_json, ensure_writable_dir
    from tenfold.core.runtime import work_starts
    from tenfold.data.lists import ListSplits
    from tenfold.relife.experiment import score_test
    from tenfold.relife.metrics import evaluation_uniforms
    from tenfold.relife.train import check_compatible, load_model, predict

    splits = ListSplits.load(lists)
    net, spec = load_model(model_dir)
    check_compatible(spec, splits.test)
    if out:
        ensure_writable_dir(out.parent)
    work_starts("scoring the test lists")
    uniforms = evaluation_uniforms(splits.test.mask.shape, draws, seed)
    per_list = score_test(splits, predict(net, splits.test), uniforms)
    record = {"model": spec["name"], "regime": splits.test.meta.get("regime"), "test_lists": len(splits.test),
              "metrics": {k: float(v.mean()) for k, v in per_list.items()}}
    if out:
        atomic_write_json(out, record)
    typer.echo(json.dumps(record, indent=2))
