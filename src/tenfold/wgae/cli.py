"""`tenfold wgae ...`: sample, fit, evaluate and inspect relational topic models of document networks."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import InputError

app = typer.Typer(help="GPGBN relational topic model + Weibull graph auto-encoders (WGCAE/WGAAE) for document "
                       "networks (arXiv 2410.09696).", no_args_is_help=True)
add_standard_commands(app, "wgae")

DATA_HELP = ("A network .npz (from `tenfold wgae sample`), `python-docs-graph` (the installed Python docs), or, "
             "with --planetoid NAME, a folder of Planetoid ind.NAME.* files.")
GENERATORS = ("gpgbn", "dcsbm")
MAX_STEPS = 1_000_000  # epochs / Adam steps / Gibbs sweeps: far above any run here, refuses a typo at once


def _topics(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise InputError(f"--topics must be comma-separated layer sizes like 16,4, got {text!r}") from None
    if not out or min(out) < 1 or max(out) > 2_000 or len(out) > 8:
        raise InputError(f"--topics must be 1 to 8 layer sizes from 1 to 2000, got {text!r}")
    return out


def _load(data: Path, planetoid: str | None):
    from tenfold.data.planetoid import load_network, load_planetoid

    if planetoid:
        return load_planetoid(data, planetoid)
    if str(data) == "python-docs-graph":
        from tenfold.data.docgraph import load_python_docs_graph

        return load_python_docs_graph()
    if data.is_file() and data.stat().st_size == 0:
        raise InputError(f"{data} is empty: expected a network .npz (make one with `tenfold wgae sample`)")
    try:
        return load_network(data)
    except (EOFError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise InputError(f"{data}: not a readable network .npz (truncated or corrupted): {err}") from None


def _finite(name: str, value: float, lo: float, hi: float) -> float:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"--{name} must be a finite number in [{lo:g}, {hi:g}], got {value}")
    return value


@app.command("sample")
def sample_cmd(
    out: Path = typer.Option(..., help="Where to write the network .npz."),
    generator: str = typer.Option("gpgbn", help="gpgbn (the model's own generative process) or dcsbm "
                                                "(degree-corrected SBM links, LDA words)."),
    nodes: int = typer.Option(800, min=2, max=200_000, help="Documents (nodes)."),
    words: int = typer.Option(400, min=2, max=100_000, help="Vocabulary size."),
    topics: str = typer.Option("16,4", help="Topics per layer, bottom first (dcsbm: one layer)."),
    doc_length: float = typer.Option(60.0, help="Mean words per document (0 < L <= 100000)."),
    degree: float = typer.Option(8.0, help="Expected mean degree (0 <= d <= min(1000, nodes - 1))."),
    blocks: int = typer.Option(6, min=1, max=1_000, help="dcsbm only: number of blocks."),
    seed: int = seed_option("Seed of the generator."),
) -> None:
    """Draw a synthetic document network with known topics."""
    from tenfold.core.io import ensure_writable_dir
    from tenfold.data.planetoid import save_network

    k = _topics(topics)
    _finite("doc-length", doc_length, 1e-6, 100_000.0)
    _finite("degree", degree, 0.0, min(1_000.0, nodes - 1))
    if generator not in GENERATORS:
        raise InputError(f"--generator must be one of {', '.join(GENERATORS)}, got {generator!r}")
    from tenfold.core.runtime import work_starts
    from tenfold.data.docgraph import check_generator_sizes

    check_generator_sizes(nodes, words, k, doc_length, degree, dense_counts=generator == "dcsbm")
    ensure_writable_dir(out.parent)
    work_starts("sampling")
    if generator == "gpgbn":
        from tenfold.wgae.gpgbn import sample

        net = sample(nodes, words, k, doc_length, degree, seed=seed)
    else:
        from tenfold.data.docgraph import sample_dcsbm_lda

        net = sample_dcsbm_lda(nodes, words, blocks, k[0], doc_length, degree, seed=seed)
    save_network(net, out)
    typer.echo(f"{out}: {net.n_nodes} documents, {net.n_words} words, {net.n_edges} links; {net.report}")


@app.command("fit")
def fit_cmd(
    data: Path = typer.Argument(..., help=DATA_HELP),
    out: Path = typer.Option(..., help="Folder for the fitted model (safetensors + config.json)."),
    planetoid: str = typer.Option(None, help="cora, citeseer or pubmed: read Planetoid raw files from DATA."),
    model: str = typer.Option("wgcae", help="wgcae, wgaae or gibbs."),
    topics: str = typer.Option("16,4", help="Topics per layer, bottom first."),
    epochs: int = typer.Option(60, min=1, max=MAX_STEPS, help="WGAE epochs (Phi updates) or Gibbs iterations."),
    decoder: str = typer.Option("dense", help="WGAE link decoder: dense, subgraph or exact."),
    kl_weight: float = typer.Option(1.0, help="Weight of the theta KL, 0..100 (0 = released code)."),
    checkpoint_every: int = typer.Option(5, min=1, max=MAX_STEPS,
                                         help="WGAE: save a resumable checkpoint in OUT every this many epochs."),
    seed: int = seed_option("Seed of the model."),
) -> None:
    """Fit a model on all links of a network and save its topics and node factors.

    WGAE runs on the device of `tenfold --device` and resumes from OUT/checkpoint.* when rerun after an
    interruption (the result equals an uninterrupted run's)."""
    import torch

    from tenfold.core.accel import device_summary
    from tenfold.core.io import atomic_write_json, atomic_write_text, ensure_writable_dir, save_tensors

    k = _topics(topics)
    _finite("kl-weight", kl_weight, 0.0, 100.0)
    net = _load(data, planetoid)
    ensure_writable_dir(out)
    if model == "gibbs":
        from tenfold.wgae.gpgbn import GibbsConfig, gibbs

        fit = gibbs(net, GibbsConfig(topics=k, iterations=epochs, burn_in=epochs // 2), seed)
        phi, theta, u = fit.phi, fit.theta, fit.u
    elif model in ("wgcae", "wgaae"):
        from tenfold.wgae.model import GraphTensors, WGAEConfig, train_wgae

        cfg = WGAEConfig(encoder="gcn" if model == "wgcae" else "gat", topics=k, epochs=epochs, decoder=decoder,
                         kl_weight=kl_weight)
        fitted = train_wgae(net, cfg, seed, checkpoint=out, checkpoint_every=checkpoint_every)
        fitted.model.cpu()
        theta = [t.numpy() for t in fitted.model.embed(GraphTensors.from_network(net))]
        phi = [p.numpy() for p in fitted.model.phi]
        u = [x.detach().numpy() for x in fitted.model.u()]
        save_tensors(out / "encoder.safetensors", {k_: v.contiguous() for k_, v in fitted.model.state_dict().items()})
    else:
        raise InputError(f"--model must be wgcae, wgaae or gibbs, got {model!r}")
    tensors = {}
    for t in range(len(k)):
        tensors[f"phi{t}"] = torch.as_tensor(phi[t], dtype=torch.float32).contiguous()
        tensors[f"theta{t}"] = torch.as_tensor(theta[t], dtype=torch.float32).contiguous()
        tensors[f"u{t}"] = torch.as_tensor(u[t], dtype=torch.float32).contiguous()
    save_tensors(out / "topics.safetensors", tensors)
    if net.vocab is not None:
        atomic_write_text(out / "vocab.txt", "\n".join(net.vocab) + "\n")
    atomic_write_json(out / "config.json", {"model": model, "topics": list(k), "data": str(data), "planetoid": planetoid,
                                            "epochs": epochs, "decoder": decoder, "kl_weight": kl_weight, "seed": seed,
                                            "nodes": net.n_nodes, "words": net.n_words, "links": net.n_edges})
    typer.echo(f"saved {model} to {out} ({net.n_nodes} nodes, {net.n_edges} links)")
    typer.echo(device_summary())


@app.command("evaluate")
def evaluate_cmd(
    data: Path = typer.Argument(..., help=DATA_HELP),
    planetoid: str = typer.Option(None, help="cora, citeseer or pubmed: read Planetoid raw files from DATA."),
    models: str = typer.Option("vgae,wgcae", help="Comma-separated: gae, vgae, gpgbn-gibbs, wgcae, wgaae."),
    topics: str = typer.Option("16,4", help="Topics per layer for the topic models (K_1 is also the GAE/VGAE size)."),
    steps: int = typer.Option(300, min=5, max=MAX_STEPS,
                              help="Adam steps for every model, rounded down to a multiple of 5 (WGAE: a Phi "
                                   "update every 5); Gibbs: sweeps."),
    seed: int = seed_option("Seed for the split and the models."),
    out: Path = typer.Option(None, help="Optional JSON file for the metrics."),
) -> None:
    """85/5/10 link split, fit on train (GAE/VGAE/WGAE: the same width and steps, the step kept chosen on
    validation AUC every 5 steps; Gibbs: the posterior mean), report test AUC/AP and clustering ACC/NMI."""
    from tenfold.core.accel import device_summary
    from tenfold.core.io import atomic_write_json
    from tenfold.wgae.baselines import fit_autoencoder, fit_gibbs
    from tenfold.wgae.evaluate import auc_ap, clustering_scores, split_links
    from tenfold.wgae.gpgbn import GibbsConfig
    from tenfold.wgae.model import WGAEConfig, fit_wgae

    net = _load(data, planetoid)
    names = [m.strip() for m in models.split(",") if m.strip()]
    known = ("gae", "vgae", "gpgbn-gibbs", "wgcae", "wgaae")
    bad = [m for m in names if m not in known]
    if bad or not names:
        raise InputError(f"unknown model(s) {bad}; choose from {', '.join(known)}")
    split = split_links(net, 0.05, 0.10, seed)
    k = _topics(topics)
    # one budget for the gradient-trained models: the same width, the same Adam steps (a multiple of WGAE's 5
    # per Phi update) and a validation check every 5 steps for each
    per_phi, hidden = 5, WGAEConfig().hidden
    report = {}
    for name in names:
        if name in ("gae", "vgae"):
            m = fit_autoencoder(name, net, split, seed, steps=per_phi * (steps // per_phi), hidden=hidden, out=k[0],
                                eval_every=per_phi)
        elif name == "gpgbn-gibbs":
            m = fit_gibbs(net, split, GibbsConfig(topics=k, iterations=steps, burn_in=steps // 2), seed)
        else:
            m = fit_wgae(net, split, WGAEConfig(encoder="gcn" if name == "wgcae" else "gat", topics=k, hidden=hidden,
                                                epochs=steps // per_phi, steps_per_epoch=per_phi, eval_every=1), seed)
        auc, ap = auc_ap(m.score(split.test_pos), m.score(split.test_neg))
        row = {"auc": auc, "ap": ap}
        if net.labels is not None:
            row["acc"], row["nmi"] = clustering_scores(m.embedding, net.labels, seed)
        report[name] = row
        typer.echo(f"{name:12s} " + "  ".join(f"{key}={v:.4f}" for key, v in row.items()))
    if out is not None:
        atomic_write_json(out, report)
    typer.echo(device_summary())


@app.command("topics")
def topics_cmd(
    model_dir: Path = typer.Argument(..., help="Folder written by `tenfold wgae fit`."),
    vocab: Path = typer.Option(None, help="Text file with one word per line (default: MODEL_DIR/vocab.txt if "
                                          "present, else word ids)."),
    top: int = typer.Option(10, min=1, max=10_000, help="Words per topic."),
) -> None:
    """Print the top words of each topic per layer (upper layers projected down through Phi)."""
    import numpy as np

    from tenfold.core.io import load_tensors

    path = model_dir / "topics.safetensors"
    if not path.is_file():
        raise InputError(f"{path} does not exist: run `tenfold wgae fit ... --out {model_dir}` first")
    tensors = load_tensors(path)
    phis = [tensors[f"phi{t}"].double().numpy() for t in range(sum(1 for k in tensors if k.startswith("phi")))]
    words = None
    if vocab is None and (model_dir / "vocab.txt").is_file():
        vocab = model_dir / "vocab.txt"
    if vocab is not None:
        if not vocab.is_file():
            raise InputError(f"vocabulary file {vocab} does not exist")
        try:
            words = vocab.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"{vocab} is not a UTF-8 text file of one word per line") from None
        if len(words) < phis[0].shape[0]:
            raise InputError(f"{vocab} has {len(words)} words but the model has {phis[0].shape[0]}")
    proj = np.eye(phis[0].shape[0])
    for t, phi in enumerate(phis):
        proj = proj @ phi  # words x K_t
        typer.echo(f"layer {t + 1} ({phi.shape[1]} topics)")
        for k in range(proj.shape[1]):
            idx = np.argsort(-proj[:, k])[:top]
            typer.echo(f"  topic {k:3d}: " + " ".join(words[i] if words else str(i) for i in idx))
