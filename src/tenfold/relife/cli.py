"""`tenfold relife ...`: build lists, simulate clicks, train and evaluate re-rankers."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands

app = typer.Typer(help="RELIFE: re-ranking with list-level hybrid (clicked + unclicked) feedback (arXiv 2410.20778).",
                  no_args_is_help=True)
add_standard_commands(app, "relife")

DATA_HELP = "'ml-100k' (from the installed recbole package) or a folder of RecBole atomic files (.inter with rating)."


def _list_config(list_len: int, history: int, max_users: int | None, seed: int):
    from tenfold.data.lists import ListConfig

    return ListConfig(list_len=list_len, history_lists=history, max_users=max_users, seed=seed)


@app.command("build-lists")
def build_lists(
    out: Path = typer.Option(..., help="Folder for train/test lists (safetensors) and lists.json."),
    data: str = typer.Option("ml-100k", help=DATA_HELP),
    list_len: int = typer.Option(10, help="Items per exposure list."),
    history: int = typer.Option(5, help="Earlier lists kept as history."),
    max_users: int = typer.Option(None, help="Use only the first N users (quick trials)."),
    seed: int = typer.Option(0, help="Seed of the initial ranker."),
) -> None:
    """Logged-label lists from real ratings (label rating >= 4, order from our MF initial ranker)."""
    from tenfold.data.lists import build_logged_lists
    from tenfold.data.movielens import load_atomic

    splits = build_logged_lists(load_atomic(data), _list_config(list_len, history, max_users, seed))
    splits.save(out)
    typer.echo(f"{splits.info['train_lists']} train / {splits.info['test_lists']} test lists -> {out}")


@app.command("simulate")
def simulate(
    out: Path = typer.Option(..., help="Folder for the simulated train/test lists."),
    data: str = typer.Option("ml-100k", help=DATA_HELP),
    beta: float = typer.Option(0.5, help="Comparison-effect strength (0 removes it)."),
    eta: float = typer.Option(1.0, help="Position bias: P(observe position j) = (1/j)^eta."),
    stop: float = typer.Option(0.5, help="Probability of stopping after a click (1 = cascade model)."),
    lists_per_user: int = typer.Option(8, help="Simulated lists per user (the last is test)."),
    list_len: int = typer.Option(10, help="Items per list."),
    history: int = typer.Option(5, help="Earlier lists kept as history."),
    max_users: int = typer.Option(None, help="Use only the first N users."),
    seed: int = typer.Option(0, help="Seed of exposures, clicks and the fitted models."),
) -> None:
    """Simulated exposures and clicks (frozen MF ground truth, PBM + cascade + comparison click model)."""
    from tenfold.data.lists import ClickModel, SimulatorConfig, build_simulated_lists
    from tenfold.data.movielens import load_atomic

    sim = SimulatorConfig(lists_per_user=lists_per_user, click=ClickModel(eta=eta, stop=stop, beta=beta), seed=seed)
    splits = build_simulated_lists(load_atomic(data), _list_config(list_len, history, max_users, seed), sim)
    splits.save(out)
    typer.echo(f"{splits.info['train_lists']} train / {splits.info['test_lists']} test lists, "
               f"click rate {splits.info['click_rate']:.3f} -> {out}")


@app.command("train")
def train(
    lists: Path = typer.Option(..., help="Folder written by build-lists or simulate."),
    out: Path = typer.Option(..., help="Folder for model.safetensors + model.json."),
    model: str = typer.Option("relife", help="relife, relife-no-cpe, relife-no-dim, relife-no-cl, prm, dlcm, setrank, initial."),
    dim: int = typer.Option(16, help="Model width."),
    epochs: int = typer.Option(3, help="Training epochs."),
    batch_size: int = typer.Option(256, help="Lists per batch."),
    lr: float = typer.Option(3e-3, help="Adam learning rate."),
    contrastive: str = typer.Option("user", help="Contrastive reading: 'user' (a) or 'label' (b)."),
    cl_weight: float = typer.Option(0.1, help="Weight lambda of the contrastive loss."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Train a re-ranker on the lists' training split."""
    from tenfold.core.runtime import seed_everything
    from tenfold.data.lists import ListSplits
    from tenfold.relife.train import TrainConfig, build_model, fit, save_model

    splits = ListSplits.load(lists)
    L, H = splits.train.mask.shape[1], splits.train.hist_mask.shape[1]
    seed_everything(seed)
    net = build_model(model, splits.train.meta, L, H, dim=dim, contrastive=contrastive, cl_weight=cl_weight)
    history = fit(net, splits.train, TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed))
    spec = {"name": model, "meta": splits.train.meta, "list_len": L, "history_lists": H, "dim": dim,
            "contrastive": contrastive, "cl_weight": cl_weight, "epochs": epochs, "seed": seed, "loss": history["loss"]}
    save_model(net, out, spec)
    typer.echo(f"trained {model} ({len(splits.train)} lists) -> {out}")


@app.command("evaluate")
def evaluate(
    lists: Path = typer.Option(..., help="Folder written by build-lists or simulate."),
    model_dir: Path = typer.Option(..., "--model", help="Folder written by `tenfold relife train`."),
    out: Path = typer.Option(None, help="Write the metrics as JSON here (default: print only)."),
    seed: int = typer.Option(0, help="Seed of the simulator's intent labels."),
) -> None:
    """NDCG/MAP/clicks/utility@{1,3,5,10} on the test split (+ expected clicks for simulated lists)."""
    from tenfold.core.io import atomic_write_json
    from tenfold.data.lists import ClickModel, ListSplits
    from tenfold.relife.experiment import evaluate_scores
    from tenfold.relife.train import check_compatible, load_model, predict

    splits = ListSplits.load(lists)
    net, spec = load_model(model_dir)
    check_compatible(spec, splits.test)
    click = ClickModel(**splits.test.meta["click"]) if splits.test.meta.get("regime") == "simulated" else None
    metrics = evaluate_scores(splits.test, predict(net, splits.test), click, seed)
    record = {"model": spec["name"], "regime": splits.test.meta.get("regime"), "metrics": metrics}
    if out:
        atomic_write_json(out, record)
    typer.echo(json.dumps(record, indent=2))
