"""LazyDiT's reproduce and bench: the zoo DiT on digits, LazyDiT against DDIM with fewer steps, static
caching and Learning-to-Cache at the same MACs budget, judged by the digit classifier."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tenfold.core.errors import InputError
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result

PAPER = {"title": "LazyDiT: Lazy Learning for the Acceleration of Diffusion Transformers", "arxiv": "2412.12444"}
METHODS = ("ddim", "ddim-fewer", "static-cache", "l2c", "lazydit")


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers of a run."""

    steps: int = 20  # DDIM steps of the full sampler (the paper reports 20 and 50 among others)
    n_per_class: int = 100  # samples per digit class for FID and accuracy
    gate_iters: int = 150
    gate_batch: int = 64
    lr: float = 1e-3  # gates: the paper's text says 1e-4, its script 1e-2; see docs (the gate logit sums tokens x dim)
    l2c_lr: float = 5e-2  # the L2C router is one scalar logit per module: it needs a larger step than a dim-wide gate
    rho: float = 1e-3  # laziness penalty ratio, same for MHSA and feedforward (calibrated here, see docs)
    rollout: int = 19  # lazy steps per training sample (steps - 1: the whole trajectory; 1 = the paper's objective)
    objective: str = "sample"  # train on the rollout's end point ("eps": the paper's per-step output MSE)
    threshold: float = 0.5
    fid_budget: float = 1.5  # the quality budget: LazyDiT's FID at most this multiple of full DDIM's
    curve_thresholds: tuple[float, ...] = ()  # extra thresholds for a FID-vs-MACs curve (trained s saturates near 0/1)
    curve_rhos: tuple[float, ...] = ()  # extra penalty ratios, each with its own trained gates and router: budgets
    model: str | None = None  # a DiT save_pretrained folder; None = the zoo's tiny-dit


PROFILES = {
    "quick": Settings(),
    "full": Settings(steps=50, n_per_class=500, gate_iters=500, gate_batch=256, rollout=49, curve_rhos=(3e-4, 3e-3)),
}


def settings_for(profile: str) -> Settings:
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return PROFILES[profile]


def _load(settings: Settings):
    from tenfold.data.images import load_digits
    from tenfold.zoo.digit_classifier import load_digit_classifier
    from tenfold.zoo.tiny_dit import load_tiny_dit

    model, scheduler = load_tiny_dit(settings.model)
    train, _ = load_digits(size=8).split(0.2, seed=0)
    return model, scheduler, load_digit_classifier(), train


def _gates_key(settings: Settings, model, seed: int) -> str:
    weights = sum(float(p.detach().double().sum()) for p in model.parameters())
    shaping = ("steps", "gate_iters", "gate_batch", "lr", "l2c_lr", "rho", "rollout", "objective")
    fields = {k: v for k, v in asdict(settings).items() if k in shaping}
    text = json.dumps({**fields, "seed": seed, "weights": round(weights, 6)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _gates_folder(settings: Settings, model, seed: int) -> Path:
    """Trained gates are cached by everything that shapes them, so bench reuses reproduce's training."""
    from tenfold.core.io import cache_dir

    return cache_dir("lazydit", "gates-" + _gates_key(settings, model, seed))


def trained_policies(settings: Settings, model, scheduler, train, seed: int, folder: Path | None = None,
                     names: tuple[str, ...] = ("lazydit", "l2c")) -> dict:
    """LazyDiT gates and the L2C router trained on the same data and loss (cached under `folder`)."""
    from tenfold.lazydit.baselines import L2CRouter
    from tenfold.lazydit.dit import dit_blocks
    from tenfold.lazydit.gates import LazyConfig, LazyGates
    from tenfold.lazydit.train import train_gates
    from tenfold.zoo.tiny_dit import to_model_space

    blocks = dit_blocks(model)
    dim = blocks[0].attn1.to_q.in_features
    data = to_model_space(train.images)
    out = {}
    for name, policy, lr in (("lazydit", LazyGates(settings.steps, len(blocks), dim), settings.lr),
                             ("l2c", L2CRouter(settings.steps, len(blocks)), settings.l2c_lr)):
        if name not in names:
            continue
        config = LazyConfig(threshold=settings.threshold, rho_attn=settings.rho, rho_mlp=settings.rho, lr=lr,
                            train_iters=settings.gate_iters, batch_size=settings.gate_batch, rollout=settings.rollout,
                            objective=settings.objective)
        path = folder / f"{name}.safetensors" if folder else None
        if path is not None and path.is_file():
            from tenfold.core.io import load_tensors

            policy.load_state_dict(load_tensors(path))
            history = json.loads((folder / f"{name}.history.json").read_text())
        else:
            history = train_gates(model, scheduler, policy, data, train.labels, config, seed=seed,
                                  checkpoint_dir=folder / f"{name}-ckpt" if folder else None).summary()
            if path is not None:
                from tenfold.core.io import atomic_write_json, save_tensors

                save_tensors(path, policy.state_dict())
                atomic_write_json(folder / f"{name}.history.json", history)
        out[name] = (policy, history)
    return out


def _run(pipe, judge, labels, steps, noise_seed: int, macs, full_macs: float, **kwargs) -> tuple[dict, torch.Tensor]:
    g = torch.Generator().manual_seed(noise_seed)  # the same starting noise for every method
    res = pipe(labels, steps, generator=g, **kwargs)
    row = judge.score(res.images, labels)
    row.update({"skip_fraction": res.stats.skip_fraction,
                "macs_ratio": macs.used(res.stats, len(labels), steps) / full_macs,
                "seconds_per_image": res.seconds / len(labels), "steps": steps})
    return row, res.images


def compare(settings: Settings, model, scheduler, judge, policies: dict, seed: int, threshold: float) -> tuple[dict, dict]:
    """All five methods at LazyDiT's MACs budget for one threshold: (metrics per method, sample images)."""
    from tenfold.lazydit.baselines import fewer_steps, static_cache_for_budget
    from tenfold.lazydit.dit import LazyDiTPipeline, profile_macs

    pipe = LazyDiTPipeline(model, scheduler)
    macs = profile_macs(model)
    full = macs.full * settings.steps
    labels = torch.arange(10).repeat_interleave(settings.n_per_class)
    rows, images = {}, {}
    run = lambda steps, **kw: _run(pipe, judge, labels, steps, seed, macs, full, **kw)  # noqa: E731
    rows["ddim"], images["ddim"] = run(settings.steps)
    rows["lazydit"], images["lazydit"] = run(settings.steps, policy=policies["lazydit"][0], threshold=threshold)
    saved = full * (1 - rows["lazydit"]["macs_ratio"])
    rows["ddim-fewer"], images["ddim-fewer"] = run(fewer_steps(settings.steps, rows["lazydit"]["macs_ratio"]))
    layers = macs.num_layers
    rows["static-cache"], images["static-cache"] = run(settings.steps, policy=static_cache_for_budget(settings.steps, layers, macs, saved))
    rows["l2c"], images["l2c"] = run(settings.steps, policy=policies["l2c"][0].schedule_for_budget(macs, saved))
    for name, row in rows.items():
        row["steps"] = row["steps"] if name == "ddim-fewer" else settings.steps
    return {m: rows[m] for m in METHODS}, images


def paper_objective_row(settings: Settings, model, scheduler, train, judge, seed: int) -> dict:
    """Ablation: the same gates trained with the paper's one-step objective (per-step output MSE against a
    one-step-old cache), everything else equal, sampled at the same threshold."""
    from tenfold.lazydit.dit import LazyDiTPipeline, profile_macs

    paper = replace(settings, rollout=1, objective="eps")
    gates, history = trained_policies(paper, model, scheduler, train, seed, _gates_folder(paper, model, seed),
                                      names=("lazydit",))["lazydit"]
    macs = profile_macs(model)
    labels = torch.arange(10).repeat_interleave(settings.n_per_class)
    row, _ = _run(LazyDiTPipeline(model, scheduler), judge, labels, settings.steps, seed, macs,
                  macs.full * settings.steps, policy=gates, threshold=settings.threshold)
    return {**row, "rollout": 1, "objective": "eps", "gate_training": history}


def _sample_grid(images: dict, labels_per_class: int, path: Path) -> str:
    from tenfold.core.plots import plt, save_figure

    per_row = 20  # two samples of each digit
    fig, axes = plt.subplots(len(images), 1, figsize=(per_row * 0.45, len(images) * 0.7 + 0.3))
    for ax, (name, imgs) in zip(axes, images.items(), strict=True):
        idx = torch.tensor([c * labels_per_class + j for c in range(10) for j in range(2)])
        row = torch.cat(list(imgs[idx, 0]), dim=1)
        ax.imshow(row.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("same seeds, same budget: two samples per digit 0-9", fontsize=9)
    return save_figure(fig, path)


def _curve_plot(curve: list[dict], path: Path) -> str:
    from tenfold.core.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in METHODS:
        pts = sorted((p["methods"][name]["macs_ratio"], p["methods"][name]["fid"]) for p in curve)
        ax.plot(*zip(*pts, strict=True), marker="o", label=name)
    ax.set_xlabel("MACs relative to full DDIM")
    ax.set_ylabel("FID (digit-classifier features)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def run_experiment(settings: Settings, out: Path, seed: int = 0, profile: str = "custom", loaded=None) -> Result:
    """Train gates and the L2C router, sample with all five methods, score them, plot, and claim."""
    from tenfold.core.runtime import seed_everything
    from tenfold.lazydit.evaluate import Judge

    seed_everything(seed)
    out = Path(out)
    model, scheduler, classifier, train = loaded or _load(settings)
    policies = trained_policies(settings, model, scheduler, train, seed, _gates_folder(settings, model, seed))
    judge = Judge.from_images(classifier, train.images)
    methods, images = compare(settings, model, scheduler, judge, policies, seed, settings.threshold)
    curve = [{"rho": settings.rho, "threshold": settings.threshold, "methods": methods}]
    for thr in settings.curve_thresholds:
        curve.append({"rho": settings.rho, "threshold": thr,
                      "methods": compare(settings, model, scheduler, judge, policies, seed, thr)[0]})
    for rho in settings.curve_rhos:  # the laziness, hence the MACs budget, is set by rho (paper's ablation)
        other = replace(settings, rho=rho)
        trained = trained_policies(other, model, scheduler, train, seed, _gates_folder(other, model, seed))
        curve.append({"rho": rho, "threshold": settings.threshold,
                      "methods": compare(other, model, scheduler, judge, trained, seed, settings.threshold)[0]})
    ablation = paper_objective_row(settings, model, scheduler, train, judge, seed)
    result = Result(method="lazydit", kind="reproduce", paper=PAPER, profile=profile, seed=seed,
                    config={**asdict(settings), "model": settings.model or "zoo:tiny-dit",
                            "fid_features": "digit-classifier (zoo) 128-d penultimate layer",
                            "fid_reference": "digits train split (split(0.2, seed=0)), 8x8",
                            "matched_budget": "baselines set to LazyDiT's measured MACs at the threshold"},
                    metrics={"methods": methods, "curve": curve,
                             "gate_training": {k: v[1] for k, v in policies.items()},
                             "lazydit_paper_objective": ablation})
    lazy = methods["lazydit"]
    result.claim("lazydit_fid_below_ddim_fewer", "At the same MACs budget, LazyDiT's FID is below DDIM with fewer steps.",
                 lazy["fid"], methods["ddim-fewer"]["fid"], "DDIM, fewer steps", "lower")
    result.claim("lazydit_fid_below_static_cache", "At the same MACs budget, LazyDiT's FID is below static caching.",
                 lazy["fid"], methods["static-cache"]["fid"], "static cache (FORA-style)", "lower")
    result.claim("lazydit_skips_30pct", "LazyDiT skips at least 30% of MHSA/feedforward calls.",
                 lazy["skip_fraction"], 0.3, "30% of module calls", "higher")
    g = policies["lazydit"][1]
    result.claim("gate_training_lowers_penalty", "Training the lazy layers lowers the laziness penalty (sum of s) below "
                 "its value at the zero initialisation.", g["penalty_last"], g["penalty_init"],
                 "penalty at the zero initialisation (s = 0.5 everywhere)", "lower")
    budget = settings.fid_budget * methods["ddim"]["fid"]
    result.claim("lazydit_fid_within_budget", f"LazyDiT's FID stays within the stated budget ({settings.fid_budget:g} x "
                 "full DDIM's FID).", lazy["fid"], budget, f"{settings.fid_budget:g} x DDIM-{settings.steps} FID", "lower")
    result.artifacts.append(_sample_grid(images, settings.n_per_class, out / "samples.png"))
    result.artifacts.append(_curve_plot(curve, out / "fid_vs_macs.png"))
    result.artifacts.append(policies["lazydit"][0].save(out / "lazydit_gates.safetensors").name)
    result.notes.append("Real data (scikit-learn digits, 8x8) and a small DiT trained here; FID is measured in the "
                        "digit classifier's feature space, not Inception-v3, so it is comparable only within this report.")
    return result


def reproduce(profile: str = "quick", seed: int = 0, out: Path = Path("reports/lazydit")) -> Result:
    return run_experiment(settings_for(profile), Path(out), seed, profile)


def bench(profile: str = "quick", seed: int = 0, out: Path = Path("reports/bench/lazydit")) -> Result:
    """Wall time per image and MACs of each method at LazyDiT's budget (fewer samples, timing only)."""
    from tenfold.core.runtime import seed_everything
    from tenfold.lazydit.evaluate import Judge

    seed_everything(seed)
    settings = replace(settings_for(profile), n_per_class=50)
    model, scheduler, classifier, train = _load(settings)
    policies = trained_policies(settings, model, scheduler, train, seed, _gates_folder(settings, model, seed))
    methods, _ = compare(settings, model, scheduler, Judge.from_images(classifier, train.images), policies, seed,
                         settings.threshold)
    base = methods["ddim"]["seconds_per_image"]
    for row in methods.values():
        row["speedup"] = base / row["seconds_per_image"] if row["seconds_per_image"] > 0 else float("nan")
    result = Result(method="lazydit", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={**asdict(settings), "model": settings.model or "zoo:tiny-dit"}, metrics={"methods": methods})
    result.claim("lazydit_faster_than_ddim", "LazyDiT's wall time per image is below full DDIM's.",
                 methods["lazydit"]["seconds_per_image"], base, "DDIM", "lower")
    return result


register(MethodSpec(
    name="lazydit", title=PAPER["title"], arxiv=PAPER["arxiv"], reproduce=reproduce, bench=bench,
    summary="Lazy learning layers before each MHSA/feedforward skip DiT work by reusing the previous step's output.",
))
