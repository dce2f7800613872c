"""`tenfold ind ...`: generate data, train, predict a submission, evaluate it (plus reproduce/bench)."""

from __future__ import annotations

from pathlib import Path

import typer

from tenfold.core.commands import add_standard_commands, seed_option
from tenfold.core.errors import InputError

app = typer.Typer(help="MIND: detect incorrect paper-author assignments (WhoIsWho IND) with a structure-enhanced LM.",
                  no_args_is_help=True)
add_standard_commands(app, "ind")
MAX_AUTHORS = 20_000  # per split of a generated set (the real WhoIsWho-IND has about 800 training authors)


@app.command("generate")
def generate(
    out: Path = typer.Option(..., help="Folder to write the IND JSON files into."),
    train_authors: int = typer.Option(100, min=2, max=MAX_AUTHORS, help="Number of training authors."),
    valid_authors: int = typer.Option(100, min=1, max=MAX_AUTHORS, help="Number of held-out authors (with ground truth)."),
    seed: int = seed_option("Seed of the generator."),
) -> None:
    """Write a seeded synthetic dataset in the real WhoIsWho IND format."""
    from tenfold.core.runtime import work_starts
    from tenfold.data.whoiswho import GeneratorConfig, generate_ind

    work_starts("generating the data")
    stats = generate_ind(out, seed, GeneratorConfig(n_train=train_authors, n_valid=valid_authors))
    typer.echo(f"wrote {stats['papers']} papers, {stats['train_authors']} train / {stats['valid_authors']} valid "
               f"authors (synthetic) to {out}")


@app.command("train")
def train(
    data: Path = typer.Option(..., help="Folder with the IND JSON files (real or generated)."),
    model: Path = typer.Option(..., help="Folder for the trained detector (resumes if interrupted)."),
    lm: str = typer.Option("tiny-lm-long", help="Zoo model name or Hugging Face causal-LM folder (e.g. Llama-3-8B)."),
    text_encoder: str = typer.Option("tfidf", help="'tfidf' or a Hugging Face encoder folder (MIND: roberta-base)."),
    profile: str = typer.Option("quick", help="Step counts and learning rates: smoke, quick or full (the official recipe)."),
    seed: int = seed_option("Seed of the encoders, GCCAD and MIND."),
) -> None:
    """Train GCCAD and MIND's three stages on the training authors."""
    from dataclasses import replace

    from tenfold.core.accel import device_summary
    from tenfold.data.whoiswho import load_ind
    from tenfold.ind.experiment import _profile, detector_config
    from tenfold.ind.pipeline import fit_detector

    ds = load_ind(data)
    for w in ds.warnings[:20]:
        typer.echo(f"warning: {w}", err=True)
    cfg = replace(detector_config(_profile(profile), lm), text_encoder=text_encoder)
    fit_detector(ds, model, cfg, seed)
    typer.echo(f"trained detector in {model}; {device_summary()}")


@app.command("predict")
def predict(
    data: Path = typer.Option(..., help="Folder with the IND JSON files."),
    model: Path = typer.Option(..., help="Folder written by `tenfold ind train`."),
    out: Path = typer.Option(..., help="Submission file to write ({aid: {pid: score}})."),
    split: str = typer.Option("valid", help="valid or test."),
    scorer: str = typer.Option("mind", help="mind (stage 3), mind-text (stage 2: titles + text embeddings), "
                                           "mind-title (stage 1: titles only) or gccad."),
) -> None:
    """Score every (author, paper) of a split and write a submission in the official format."""
    from tenfold.data.whoiswho import load_ind, write_submission
    from tenfold.ind.pipeline import load_detector

    stages = {"mind": 3, "mind-text": 2, "mind-title": 1, "gccad": 3}
    if scorer not in stages:
        raise InputError(f"--scorer must be one of {', '.join(stages)}, got {scorer!r}")
    ds = load_ind(data)
    for w in ds.warnings[:20]:
        typer.echo(f"warning: {w}", err=True)
    stage = stages[scorer]
    det = load_detector(model, stage)
    authors = ds.split(split)
    scores = det.gccad_scores(ds, authors) if scorer == "gccad" else det.score(ds, authors, stage)
    write_submission(out, scores)
    typer.echo(f"wrote {sum(len(v) for v in scores.values())} scores for {len(scores)} authors to {out}")


def truth_labels(truth, path: Path) -> dict[str, dict[str, int]]:
    """{aid: {pid: 1 normal / 0 outlier}} from the official ground truth; a paper listed as both is an error."""
    if not isinstance(truth, dict) or not all(isinstance(v, dict) for v in truth.values()):
        raise InputError(f"{path}: expected {{author id: {{\"normal_data\": [...], \"outliers\": [...]}}}}")
    labels = {}
    for aid, v in truth.items():
        normal, outliers = set(v.get("normal_data", [])), set(v.get("outliers", []))
        both = sorted(normal & outliers)
        if both:
            raise InputError(f"{path}: author {aid} lists {len(both)} paper(s) as both normal and outlier "
                             f"(e.g. {both[0]}): fix the ground truth")
        labels[aid] = {**{p: 1 for p in normal}, **{p: 0 for p in outliers}}
    return labels


@app.command("evaluate")
def evaluate(
    submission: Path = typer.Option(..., help="Submission JSON {aid: {pid: score}}."),
    ground_truth: Path = typer.Option(..., help="Ground truth JSON {aid: {normal_data, outliers}}."),
) -> None:
    """Weighted AUC and MAP (weights = number of outliers per author), as the official evaluation."""
    from tenfold.core.io import read_json
    from tenfold.ind.metrics import weighted_auc_map

    for p in (submission, ground_truth):
        if not p.is_file():
            raise InputError(f"{p} does not exist")
    truth, sub = read_json(ground_truth), read_json(submission)
    score = weighted_auc_map(truth_labels(truth, ground_truth), sub)
    typer.echo(f"weighted AUC {score.wauc:.4f}  weighted MAP {score.wmap:.4f}  ({score.authors} authors with outliers)")
