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
    out: Path = typer.Option(..., help="Folder for train/val/test lists (safetensors) and lists.json."),
    data: str = typer.Option("ml-100k", help=DATA_HELP),
    list_len: int = typer.Option(10, help="Items per exposure list."),
    history: int = typer.Option(4, help="Earlier lists kept as history."),
    max_users: int = typer.Option(None, help="Use only the first N users (quick trials)."),
    seed: int = typer.Option(0, help="Seed of the initial ranker."),
) -> None:
    """Logged-label lists from real ratings (label rating >= 4, order from our MF initial ranker)."""
    from tenfold.data.lists import build_logged_lists
    from tenfold.data.movielens import load_atomic

    splits = build_logged_lists(load_atomic(data), _list_config(list_len, history, max_users, seed))
    splits.save(out)
    typer.echo(f"{splits.info['train_lists']} train / {splits.info['val_lists']} val / {splits.info['test_lists']} "
               f"test lists -> {out}")


@app.command("simulate")
def simulate(
    out: Path = typer.Option(..., help="Folder for the simulated train/val/test lists."),
    data: str = typer.Option("ml-100k", help=DATA_HELP),
    beta: float = typer.Option(3.0, help="Mean substitution strength: beta_u is 0 or 2*beta per user (0 removes it)."),
    eta: float = typer.Option(1.0, help="Position bias: P(examine position j) = (1/j)^eta."),
    stop: float = typer.Option(0.5, help="Probability of stopping after a click (1 = cascade model)."),
    noise: float = typer.Option(0.5, help="Std of the initial ranker's noise on logit r."),
    lists_per_user: int = typer.Option(9, help="Simulated lists per user (the last are test, one validation)."),
    test_lists: int = typer.Option(2, help="Test lists per user."),
    list_len: int = typer.Option(10, help="Items per list."),
    history: int = typer.Option(3, help="Earlier lists kept as history."),
    max_users: int = typer.Option(None, help="Use only the first N users."),
    seed: int = typer.Option(0, help="Seed of exposures, traits, clicks and the ground truth."),
) -> None:
    """Simulated exposures and clicks (frozen MF ground truth, PBM + cascade + per-user substitution)."""
    from tenfold.data.lists import ClickModel, SimulatorConfig, build_simulated_lists, fit_ground_truth
    from tenfold.data.movielens import load_atomic

    sim = SimulatorConfig(lists_per_user=lists_per_user, test_lists=test_lists, beta=beta, ranker_noise=noise,
                          click=ClickModel(eta=eta, stop=stop), seed=seed)
    cfg = _list_config(list_len, history, max_users, seed)
    dataset = load_atomic(data)
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
    dim: int = typer.Option(16, help="Model width."),
    max_epochs: int = typer.Option(6, help="Most epochs; training stops earlier when validation stops improving."),
    patience: int = typer.Option(2, help="Epochs without validation improvement before stopping."),
    batch_size: int = typer.Option(128, help="Lists per batch (the global batch under data parallelism)."),
    lr: float = typer.Option(1e-2, help="Adam learning rate."),
    contrastive: str = typer.Option("user", help="Contrastive reading: 'user' (a) or 'label' (b)."),
    cl_weight: float = typer.Option(0.01, help="Weight lambda of the contrastive loss."),
    seed: int = typer.Option(0, help="Seed."),
) -> None:
    """Train a re-ranker with early stopping; a killed run resumes from its checkpoint in OUT."""
    from tenfold.core.accel import device_summary
    from tenfold.core.io import Checkpoint, ensure_writable_dir
    from tenfold.core.runtime import seed_everything
    from tenfold.data.lists import ListSplits
    from tenfold.relife.train import TrainConfig, save_model, train_model

    splits = ListSplits.load(lists)
    signal = signal or ("intent" if splits.train.meta.get("regime") == "simulated" else "labels")
    cfg = TrainConfig(max_epochs=max_epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed)
    ensure_writable_dir(out)
    seed_everything(seed)
    net, history = train_model(model, splits, cfg, signal, dim=dim, contrastive=contrastive, cl_weight=cl_weight,
                               folder=out)
    L, H = splits.train.mask.shape[1], splits.train.hist_mask.shape[1]
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
    draws: int = typer.Option(16, help="Simulator draws per test list (simulated lists)."),
    seed: int = typer.Option(0, help="Seed of the simulator's evaluation draws."),
) -> None:
    """NDCG@5 / MAP@5 on the test split (simulated lists: on intent and on clicks, plus expected clicks)."""
    from tenfold.core.errors import InputError
    from tenfold.core.io import atomic_write_json
    from tenfold.data.lists import ListSplits
    from tenfold.relife.experiment import score_test
    from tenfold.relife.metrics import evaluation_uniforms
    from tenfold.relife.train import check_compatible, load_model, predict

    if draws < 1:
        raise InputError(f"--draws must be at least 1, got {draws}")
    splits = ListSplits.load(lists)
    net, spec = load_model(model_dir)
    check_compatible(spec, splits.test)
    uniforms = evaluation_uniforms(splits.test.mask.shape, draws, seed)
    per_list = score_test(splits, predict(net, splits.test), uniforms)
    record = {"model": spec["name"], "regime": splits.test.meta.get("regime"), "test_lists": len(splits.test),
              "metrics": {k: float(v.mean()) for k, v in per_list.items()}}
    if out:
        atomic_write_json(out, record)
    typer.echo(json.dumps(record, indent=2))
