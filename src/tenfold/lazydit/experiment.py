"""LazyDiT's reproduce and bench on the zoo DiT (digits): gates trained with the paper's recipe and with
our end-point objective, each with rho tuned on validation for the same MACs budget, against DDIM with
fewer steps and static caching at matched MACs, on one FID-vs-MACs curve, judged against the digits'
held-out split (which trained nothing) in the digit classifier's features."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.registry import MethodSpec, register
from tenfold.core.results import Result

PAPER = {"title": "LazyDiT: Lazy Learning for the Acceleration of Diffusion Transformers", "arxiv": "2412.12444"}
BASELINES = ("ddim-fewer", "static-cache")
TEST_NOISE, VAL_NOISE = 10_000, 20_000  # offsets of the noise seeds: test and validation never share noise
THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)  # where the budget threshold is looked for
CACHE_VERSION = 2  # bump when gate training changes


@dataclass(frozen=True)
class Recipe:
    """One way of training the gates; its penalty ratio is tuned on validation over `rhos`."""

    name: str
    objective: str
    pattern: str
    window: int
    lr: float
    iters: int
    batch: int
    rhos: tuple[float, ...]
    checkpointing: bool = False

    def config(self, rho: float, threshold: float):
        from tenfold.lazydit.gates import LazyConfig

        return LazyConfig(threshold=threshold, rho_attn=rho, rho_mlp=rho, lr=self.lr, train_iters=self.iters,
                          batch_size=self.batch, objective=self.objective, pattern=self.pattern, window=self.window,
                          checkpointing=self.checkpointing)


# the authors' recipe (LazyConfig's defaults: lr 1e-4, 500 iterations, one-step loss, every other step);
# only rho is retuned (their 1e-7 is for DiT-XL/2 latents) and the batch is cut from 64 to 16 on CPU
PAPER_RECIPE = Recipe("paper", "one-step", "alternate", 1, lr=1e-4, iters=500, batch=16, rhos=(1e-4, 1e-3))
# ours: a 4-step rolled-out window at every step, judged on the clean-image estimate at its end
END_POINT = Recipe("end-point", "end-point", "every", 4, lr=1e-3, iters=120, batch=16, rhos=(1e-4, 3e-4))


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers of a run."""

    steps: int = 20  # DDIM steps of the full sampler (the paper reports 20 and 50 among others)
    n_per_class: int = 50  # test samples per digit (held-out FID, precision/recall, accuracy)
    n_val_per_class: int = 15  # validation samples per digit (rho tuning, FID against the training split)
    recipes: tuple[Recipe, ...] = (PAPER_RECIPE, END_POINT)
    target_macs: float = 0.6  # the budget both recipes' rho are tuned for (MACs relative to full DDIM)
    macs_tolerance: float = 0.01  # a baseline may have at most this much fewer MACs than the LazyDiT run it meets
    threshold: float = 0.5  # the paper's; each gate set also gets the threshold meeting the budget (THRESHOLDS)
    resamples: int = 1000  # bootstrap resamples per interval
    l2c: bool = False  # also train a Learning-to-Cache router with the paper's recipe and tuned rho
    model: str | None = None  # a DiT save_pretrained folder; None = the zoo's tiny-dit

    def __post_init__(self) -> None:
        if self.steps < 2 or self.n_per_class < 2 or self.n_val_per_class < 2 or not self.recipes:
            raise InputError(f"settings need steps, n_per_class, n_val_per_class >= 2 and a recipe, got {self}")
        if len({r.name for r in self.recipes}) != len(self.recipes) or self.recipes[0].name != "paper":
            raise InputError("recipes need distinct names, the first being the paper's ('paper')")


def _smoke_recipe(recipe: Recipe) -> Recipe:
    return replace(recipe, iters=4, batch=8, rhos=recipe.rhos[-1:])


PROFILES = {
    "smoke": Settings(steps=4, n_per_class=4, n_val_per_class=2, recipes=tuple(_smoke_recipe(r) for r in
                      (PAPER_RECIPE, END_POINT)), resamples=50, l2c=True),
    "quick": Settings(),
    "full": Settings(steps=50, n_per_class=200, n_val_per_class=50, resamples=2000, l2c=True,
                     recipes=(replace(PAPER_RECIPE, batch=64, rhos=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 1e-1)),
                              replace(END_POINT, batch=64, iters=500, rhos=(1e-4, 2e-4, 3e-4, 5e-4, 1e-3)))),
}
DEFAULT_SEEDS = {"smoke": 1, "quick": 1, "full": 3}


def settings_for(profile: str) -> Settings:
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return PROFILES[profile]


@dataclass
class Loaded:
    """The pipeline, the judge's classifier, and the digits split into training and held-out parts."""

    pipe: object
    classifier: torch.nn.Module
    train: object
    held_out: object


def load(settings: Settings) -> Loaded:
    from tenfold.core.runtime import pick_device
    from tenfold.data.images import load_digits
    from tenfold.lazydit.dit import LazyDiTPipeline
    from tenfold.zoo.digit_classifier import load_digit_classifier
    from tenfold.zoo.tiny_dit import load_tiny_dit

    model, scheduler = load_tiny_dit(settings.model)
    train, held_out = load_digits(size=8).split(0.2, seed=0)
    return Loaded(LazyDiTPipeline(model.to(pick_device()), scheduler), load_digit_classifier(), train, held_out)


def data_overlap(train, held_out) -> dict:
    """The held-out images never trained anything: disjoint by construction; identical pixel grids counted."""
    train_rows = {bytes(row.numpy()) for row in train.levels.flatten(1).to(torch.uint8)}
    same = sum(bytes(row.numpy()) in train_rows for row in held_out.levels.flatten(1).to(torch.uint8))
    return {"train_images": len(train.labels), "held_out_images": len(held_out.labels),
            "held_out_identical_to_a_training_image": int(same)}


def _cache_folder(settings: Settings, recipe: Recipe, rho: float, seed: int, model) -> Path:
    """Trained gates are cached by everything that shapes them, so bench and reruns reuse the training."""
    from tenfold.core.io import cache_dir

    weights = sum(float(p.detach().double().sum()) for p in model.parameters())
    text = json.dumps({"recipe": asdict(recipe), "rho": rho, "steps": settings.steps, "threshold": settings.threshold,
                       "seed": seed, "weights": round(weights, 6), "version": CACHE_VERSION}, sort_keys=True)
    return cache_dir("lazydit", "gates-" + hashlib.sha256(text.encode()).hexdigest()[:16])


def trained_policy(settings: Settings, recipe: Recipe, rho: float, seed: int, loaded: Loaded, kind: str = "lazydit"):
    """(policy, training summary): LazyDiT gates or the L2C router, trained on the digits' training split."""
    from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
    from tenfold.lazydit.baselines import L2CRouter
    from tenfold.lazydit.dit import dit_blocks
    from tenfold.lazydit.gates import LazyGates, lazy_steps
    from tenfold.lazydit.train import train_gates

    model = loaded.pipe.transformer
    if kind == "lazydit":
        policy = LazyGates.for_model(model, settings.steps, recipe.pattern)
    else:
        policy = L2CRouter(settings.steps, len(dit_blocks(model)), lazy_steps(settings.steps, recipe.pattern))
    folder = _cache_folder(settings, recipe, rho, seed, model)
    path = folder / f"{kind}.safetensors"
    if path.is_file():
        policy.load_state_dict(load_tensors(path))
        return policy, read_json(folder / f"{kind}.history.json")
    x0 = loaded.pipe.encode(loaded.train.images)
    history = train_gates(model, loaded.pipe.scheduler, policy, x0, loaded.train.labels,
                          recipe.config(rho, settings.threshold), seed=seed, checkpoint_dir=folder / f"{kind}-ckpt")
    summary = history.summary()
    save_tensors(path, policy.state_dict())
    atomic_write_json(folder / f"{kind}.history.json", summary)
    return policy, summary


@dataclass
class Run:
    """One sampler's images, scored: the row of numbers and the per-unit arrays behind the intervals."""

    row: dict
    units: dict
    images: torch.Tensor = field(repr=False)


def sample_and_score(loaded: Loaded, judge, labels: torch.Tensor, steps: int, noise_seed: int, full_macs: float,
                     **kwargs) -> Run:
    """Sample `labels` (same starting noise for every sampler), score them, and cost them against
    `full_macs` (a full DDIM run's MACs per image)."""
    res = loaded.pipe(labels, steps, guidance_scale=1.0, generator=torch.Generator().manual_seed(noise_seed),
                      output_type="pt", **kwargs)
    images = res.images.cpu()
    row = judge.score(images, labels)
    units = row.pop("_units")
    row.update({"macs_ratio": res.macs / full_macs, "skip_fraction": res.skip_fraction, "steps": steps,
                "seconds_per_image": res.seconds / len(labels)})
    return Run(row, units, images)


def matched_baselines(settings: Settings, macs, macs_ratio: float) -> dict:
    """DDIM-fewer and static caching with at least LazyDiT's MACs (less `macs_tolerance`)."""
    from tenfold.lazydit.baselines import fewer_steps, static_cache_for_budget

    budget = max(macs_ratio - settings.macs_tolerance, 1 / settings.steps)
    saved = (1 - budget) * macs.full * settings.steps
    return {"ddim-fewer": {"steps": fewer_steps(settings.steps, min(budget, 1.0))},
            "static-cache": {"gates": static_cache_for_budget(settings.steps, macs.num_layers, macs, saved)}}


class ScoreRecorder:
    """A policy wrapper that remembers every decision's scores, to predict the MACs at other thresholds."""

    def __init__(self, policy):
        self.policy = policy
        self.num_steps, self.num_layers, self.gate_cost = policy.num_steps, policy.num_layers, policy.gate_cost
        self.scores: list[tuple[str, torch.Tensor]] = []

    def is_active(self, step: int) -> bool:
        return self.policy.is_active(step)

    def keep_probability(self, kind: str, step: int, layer: int, z: torch.Tensor) -> torch.Tensor:
        s = self.policy.keep_probability(kind, step, layer, z)
        self.scores.append((kind, s.detach().float().cpu()))
        return s


def predicted_macs(recorder: ScoreRecorder, macs, threshold: float, images: int, gate_calls: int, steps: int) -> float:
    """MACs ratio a run would have at `threshold` if every score stayed as recorded (a first-order guess:
    skipping more moves the trajectory, hence the scores, a little)."""
    cost = {"attn": macs.attn, "mlp": macs.mlp}
    saved = sum(float((s < threshold).sum()) * cost[kind] for kind, s in recorder.scores)
    return (images * steps * macs.full - saved + gate_calls * macs.gate) / (images * steps * macs.full)


def tune_threshold(settings: Settings, loaded: Loaded, gates, judge, labels: torch.Tensor, noise_seed: int,
                   trials: int = 3) -> Run:
    """The validation run at the smallest threshold (of THRESHOLDS) whose MACs stay within the budget: the
    first probe is predicted from the scores of a run at the paper's 0.5, the next ones bisect between the
    thresholds known to exceed the budget and those known to meet it (MACs fall as the threshold rises)."""
    steps, macs = settings.steps, loaded.pipe.macs
    full = macs.full * steps
    limit = settings.target_macs + settings.macs_tolerance
    recorder = ScoreRecorder(gates)
    runs = {settings.threshold: sample_and_score(loaded, judge, labels, steps, noise_seed, full, gates=recorder,
                                                 threshold=settings.threshold)}
    gate_calls = sum(len(s) for _, s in recorder.scores)
    fits = [t for t in THRESHOLDS if predicted_macs(recorder, macs, t, len(labels), gate_calls, steps) <= limit]
    probe = min(fits, default=THRESHOLDS[-1])
    for _ in range(trials):
        if probe not in runs:
            runs[probe] = sample_and_score(loaded, judge, labels, steps, noise_seed, full, gates=gates, threshold=probe)
        over = max((t for t in runs if runs[t].row["macs_ratio"] > limit), default=0.0)
        within = min((t for t in runs if runs[t].row["macs_ratio"] <= limit), default=1.0)
        between = [t for t in THRESHOLDS if over < t < within]
        if not between:
            break
        probe = between[len(between) // 2]
    meets = [t for t in runs if runs[t].row["macs_ratio"] <= limit]
    threshold = min(meets) if meets else min(runs, key=lambda t: runs[t].row["macs_ratio"])
    runs[threshold].row["threshold"] = threshold
    return runs[threshold]


def choose_rho(points: list[dict], target: float, tolerance: float) -> dict:
    """The validation point with the lowest FID among those within the MACs budget (else the cheapest)."""
    within = [p for p in points if p["val"]["macs_ratio"] <= target + tolerance]
    return min(within, key=lambda p: p["val"]["fid"]) if within else min(points, key=lambda p: p["val"]["macs_ratio"])


def run_seed(settings: Settings, loaded: Loaded, seed: int) -> dict:
    """Train, tune (rho, threshold) on validation and test every sampler for one seed; per-unit arrays kept
    for the intervals. Every gate set is also tested at the paper's threshold (the curve's other points)."""
    from tenfold.lazydit.evaluate import Judge

    steps = settings.steps
    macs = loaded.pipe.macs
    full = macs.full * steps
    val_judge = Judge.from_images(loaded.classifier, loaded.train.images)  # tuning never sees the held-out split
    test_judge = Judge.from_images(loaded.classifier, loaded.held_out.images)
    val_labels = torch.arange(10).repeat_interleave(settings.n_val_per_class)
    test_labels = torch.arange(10).repeat_interleave(settings.n_per_class)
    test = {}  # (sampler, setting...) -> Run, each sampled once

    def run_test(key: tuple, **kwargs) -> Run:
        if key not in test:
            kw = {"steps": steps, "threshold": settings.threshold} | kwargs
            test[key] = sample_and_score(loaded, test_judge, test_labels, noise_seed=TEST_NOISE + seed, full_macs=full,
                                         **kw)
        return test[key]

    def run_matched(macs_ratio: float) -> dict:
        match = matched_baselines(settings, macs, macs_ratio)
        keys = {"ddim-fewer": ("ddim-fewer", match["ddim-fewer"]["steps"]),
                "static-cache": ("static-cache", int((~match["static-cache"]["gates"].keep[:, 0, 0]).sum()))}
        run_test(keys["ddim-fewer"], steps=match["ddim-fewer"]["steps"])
        run_test(keys["static-cache"], gates=match["static-cache"]["gates"])
        return keys

    run_test(("ddim", steps))
    recipes = {}
    for recipe in settings.recipes:
        points = []
        for rho in recipe.rhos:
            gates, history = trained_policy(settings, recipe, rho, seed, loaded)
            val = tune_threshold(settings, loaded, gates, val_judge, val_labels, VAL_NOISE + seed)
            natural = run_test((recipe.name, rho, settings.threshold), gates=gates)
            points.append({"rho": rho, "threshold": val.row["threshold"], "gate_training": history, "val": val.row,
                           "gates": gates, "curve_baselines": run_matched(natural.row["macs_ratio"])})
        chosen = choose_rho(points, settings.target_macs, settings.macs_tolerance)
        chosen["key"] = (recipe.name, chosen["rho"], chosen["threshold"])
        tuned = run_test(chosen["key"], gates=chosen["gates"], threshold=chosen["threshold"])
        chosen["baselines"] = run_matched(tuned.row["macs_ratio"])
        recipes[recipe.name] = {"points": points, "chosen": chosen}
    if settings.l2c:
        paper = recipes["paper"]["chosen"]
        router, history = trained_policy(settings, settings.recipes[0], paper["rho"], seed, loaded, kind="l2c")
        saved = (1 - test[paper["key"]].row["macs_ratio"] + settings.macs_tolerance) * full
        run_test(("l2c", paper["rho"]), gates=router.schedule_for_budget(macs, saved))
        recipes["paper"]["l2c_training"] = history
    return {"seed": seed, "test": test, "recipes": recipes}


def _blocks(settings: Settings) -> np.ndarray:
    """Block j: the j-th test sample of every digit (labels are arange(10).repeat_interleave(n))."""
    return np.tile(np.arange(settings.n_per_class), 10)


def fid_interval(settings: Settings, judge, ours: list[np.ndarray], reference: list[np.ndarray]):
    """Interval of mean-over-seeds FID(ours) - FID(reference): paired bootstrap over blocks of test images
    (the same blocks resampled in every seed)."""
    from tenfold.core.stats import paired_bootstrap
    from tenfold.lazydit.evaluate import block_moments, moments_stats

    blocks = _blocks(settings)
    a = np.hstack([block_moments(f, blocks) for f in ours])
    b = np.hstack([block_moments(f, blocks) for f in reference])
    dim, width = ours[0].shape[1], a.shape[1] // len(ours)

    def mean_fid(rows: np.ndarray) -> float:
        return float(np.mean([judge.reference.fid(*moments_stats(rows[:, s * width:(s + 1) * width], dim))
                              for s in range(len(ours))]))

    return paired_bootstrap(a, b, statistic=mean_fid, seeds=len(ours) if len(ours) > 1 else None,
                            unit="test-image block", n_resamples=settings.resamples)


def unit_interval(settings: Settings, ours: list[np.ndarray], reference: list[np.ndarray], unit: str):
    """Interval of a mean over units (precision: generated images; recall: real images), paired, over seeds."""
    from tenfold.core.stats import paired_bootstrap

    return paired_bootstrap(np.stack(ours, 1), np.stack(reference, 1), unit=unit,
                            seeds=len(ours) if len(ours) > 1 else None, n_resamples=settings.resamples)


def compare(settings: Settings, judge, ours: list[Run], reference: list[Run]) -> dict:
    """FID, precision and recall of ours - reference with intervals (the numbers behind a claim)."""
    fid = fid_interval(settings, judge, [r.units["features"] for r in ours], [r.units["features"] for r in reference])
    out = {"fid": [float(np.mean([r.row["fid"] for r in ours])), float(np.mean([r.row["fid"] for r in reference]))],
           "fid_interval": fid}
    for name, unit in (("precision", "generated image"), ("recall", "held-out image")):
        iv = unit_interval(settings, [r.units[name] for r in ours], [r.units[name] for r in reference], unit)
        out[f"{name}_difference"] = {"estimate": iv.estimate, "interval": iv.bounds()}
    return out


def add_fid_claim(result: Result, claim_id: str, statement: str, comparison: dict, reference_name: str) -> None:
    """A lower-is-better FID claim from `compare`'s numbers; its negative control feeds it a null."""
    ours, ref = comparison["fid"]
    interval = comparison["fid_interval"]
    result.claim(claim_id, statement, ours, ref, reference_name, "lower", interval=interval,
                 evidence=f"{interval.evidence} (a block: one test image per digit, the same starting noise on both "
                          "sides); FID against the held-out digits")


def _curve_plot(rows: list[dict], chosen: dict, path: Path) -> str:
    from tenfold.core.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    styles = {"ddim-fewer": ("tab:blue", "s"), "static-cache": ("tab:orange", "^"), "paper": ("tab:green", "o"),
              "end-point": ("tab:red", "D"), "ddim": ("black", "*"), "l2c": ("tab:purple", "v")}
    for sampler in dict.fromkeys(r["sampler"] for r in rows):
        pts = sorted((r["macs_ratio"], r["fid"]) for r in rows if r["sampler"] == sampler)
        color, marker = styles.get(sampler, ("grey", "."))
        label = {"paper": "LazyDiT, paper's recipe", "end-point": "LazyDiT, end-point objective (ours)"}.get(sampler, sampler)
        ax.plot(*zip(*pts, strict=True), marker=marker, color=color, label=label, lw=1)
    for name, (m, f) in chosen.items():
        ax.scatter([m], [f], s=140, facecolors="none", edgecolors=styles.get(name, ("grey", "."))[0], lw=1.5)
    ax.set_xlabel("MACs relative to full DDIM")
    ax.set_ylabel("FID vs held-out digits (classifier features)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title("circled: rho tuned on validation for the budget", fontsize=8)
    return save_figure(fig, path)


def _sample_grid(images: dict, n_per_class: int, path: Path) -> str:
    from tenfold.core.plots import plt, save_figure

    fig, axes = plt.subplots(len(images), 1, figsize=(9, len(images) * 0.7 + 0.3))
    for ax, (name, imgs) in zip(np.atleast_1d(axes), images.items(), strict=True):
        idx = torch.tensor([c * n_per_class + j for c in range(10) for j in range(min(2, n_per_class))])
        ax.imshow(torch.cat(list(imgs[idx, 0]), dim=1).numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("same starting noise, matched budget: two samples per digit 0-9", fontsize=9)
    return save_figure(fig, path)


def _curve_rows(per_seed: list[dict]) -> list[dict]:
    """Every tested sampler's MACs and FID, averaged over seeds where the same setting was run in each."""
    rows = {}
    for s in per_seed:
        for key, run in s["test"].items():
            rows.setdefault(key, []).append(run.row)
    out = []
    for key, runs in rows.items():
        mean = {k: float(np.mean([r[k] for r in runs])) for k in ("macs_ratio", "fid", "precision", "recall",
                                                                   "class_acc", "skip_fraction", "seconds_per_image")}
        out.append({"sampler": key[0], "setting": list(key[1:]), "seeds": len(runs), **mean})
    return sorted(out, key=lambda r: (r["sampler"], r["macs_ratio"]))


def run_experiment(settings: Settings, out: Path, seeds: list[int], profile: str = "custom",
                   loaded: Loaded | None = None) -> Result:
    """Every seed's training, tuning and test runs, then the claims with intervals over blocks x seeds."""
    from tenfold.core.runtime import seed_everything
    from tenfold.lazydit.evaluate import Judge

    out = Path(out)
    loaded = loaded or load(settings)
    per_seed = []
    for seed in seeds:
        seed_everything(seed)
        per_seed.append(run_seed(settings, loaded, seed))
    judge = Judge.from_images(loaded.classifier, loaded.held_out.images)
    result = Result(method="lazydit", kind="reproduce", paper=PAPER, profile=profile, seed=seeds[0], seeds=list(seeds),
                    config={**asdict(settings), "model": settings.model or "zoo:tiny-dit",
                            "fid_features": "digit-classifier (zoo) 128-d penultimate layer",
                            "fid_reference": "digits held-out split (split(0.2, seed=0) validation part): trained "
                                             "neither the DiT, nor the gates, nor the classifier",
                            "tuning": "rho per recipe: lowest validation FID (against the training split, separate "
                                      "noise) within target_macs + macs_tolerance",
                            "matched_budget": "each baseline gets the fewest steps / least compute with at least "
                                              "LazyDiT's measured MACs minus macs_tolerance"},
                    metrics={"data": data_overlap(loaded.train, loaded.held_out), "macs_per_image_full":
                             loaded.pipe.macs.full * settings.steps})
    tuned = {name: [s["recipes"][name]["chosen"] for s in per_seed] for name in per_seed[0]["recipes"]}

    def runs(seed_runs, key_of) -> list[Run]:
        return [s["test"][key_of(s, c)] for s, c in zip(per_seed, seed_runs, strict=True)]

    paper = runs(tuned["paper"], lambda s, c: c["key"])
    comparisons = {}
    for base in BASELINES:
        ref = runs(tuned["paper"], lambda s, c, b=base: c["baselines"][b])
        comparisons[f"paper_vs_{base}"] = compare(settings, judge, paper, ref)
    names = {"ddim-fewer": "DDIM with fewer steps", "static-cache": "static caching (FORA-style)"}
    for base in BASELINES:
        add_fid_claim(result, f"paper_recipe_fid_below_{base.replace('-', '_')}",
                      f"At matched MACs (LazyDiT's penalty ratio and threshold tuned on validation for {settings.target_macs:g} "
                      "of full DDIM's MACs), "
                      f"LazyDiT trained with the paper's recipe has a lower held-out FID than {names[base]} with at "
                      f"least its MACs less {settings.macs_tolerance:g} (null: no difference, e.g. LazyDiT skipping "
                      "nothing meets full DDIM).",
                      comparisons[f"paper_vs_{base}"], names[base])
    if "end-point" in tuned:
        ends = runs(tuned["end-point"], lambda s, c: c["key"])
        comparisons["end_point_vs_paper"] = compare(settings, judge, ends, paper)
        add_fid_claim(result, "end_point_fid_below_paper_recipe",
                      "Ablation: with penalty ratio and threshold tuned on validation for the same MACs budget, gates "
                      "trained with our end-point "
                      "objective have a lower held-out FID than gates trained with the paper's recipe (null: the "
                      "objectives are equivalent).", comparisons["end_point_vs_paper"], "LazyDiT, paper's recipe")
    curve = _curve_rows(per_seed)
    chosen_points = {name: (float(np.mean([r.row["macs_ratio"] for r in runs(c, lambda s, x: x["key"])])),
                            float(np.mean([r.row["fid"] for r in runs(c, lambda s, x: x["key"])])))
                     for name, c in tuned.items()}
    result.metrics.update({
        "curve": curve,
        "tuned": {name: [{"rho": c["rho"], "threshold": c["threshold"], "val": c["val"],
                          "test": per_seed[i]["test"][c["key"]].row,
                          "baselines": {b: per_seed[i]["test"][c["baselines"][b]].row for b in BASELINES}}
                         for i, c in enumerate(cs)] for name, cs in tuned.items()},
        "comparisons": {k: {**{kk: vv for kk, vv in v.items() if kk != "fid_interval"},
                            "fid_difference": {"estimate": v["fid_interval"].estimate,
                                               "interval": v["fid_interval"].bounds(),
                                               "evidence": v["fid_interval"].evidence}} for k, v in comparisons.items()},
        "validation": {name: [[{"rho": p["rho"], **p["val"], "gate_training": p["gate_training"]}
                               for p in s["recipes"][name]["points"]] for s in per_seed] for name in tuned},
        "per_seed": [{"seed": s["seed"], "fid": {"@".join(map(str, k)): r.row["fid"] for k, r in s["test"].items()}}
                     for s in per_seed],
    })
    result.artifacts.append(_curve_plot(curve, chosen_points, out / "fid_vs_macs.png"))
    first = per_seed[0]
    grid = {"ddim": first["test"][("ddim", settings.steps)].images}
    for name, cs in tuned.items():
        grid[f"lazydit ({name})"] = first["test"][cs[0]["key"]].images
    for base in BASELINES:
        grid[base] = first["test"][tuned["paper"][0]["baselines"][base]].images
    result.artifacts.append(_sample_grid(grid, settings.n_per_class, out / "samples.png"))
    result.notes.append("Real data (scikit-learn digits, 8x8) and a small DiT trained here; FID, precision and recall are "
                        "measured in the digit classifier's feature space against the held-out digits, not Inception-v3 "
                        "on ImageNet, so they are comparable only within this report.")
    result.notes.append(f"Intervals: paired bootstrap over blocks of generated test images x {len(seeds)} seed(s); gate "
                        "training variation enters only through the seeds.")
    return result


def reproduce(profile: str = "quick", seed: int = 0, out: Path = Path("reports/lazydit"), seeds: int | None = None
              ) -> Result:
    settings = settings_for(profile)
    n = seeds or DEFAULT_SEEDS[profile]
    return run_experiment(settings, Path(out), list(range(seed, seed + n)), profile)


def bench(profile: str = "quick", seed: int = 0, out: Path = Path("reports/bench/lazydit")) -> Result:
    """Wall time per image of full DDIM, LazyDiT (paper's recipe, tuned rho), static caching and DDIM-fewer at
    matched MACs on this device; on CUDA also the gating overhead on a DiT-XL/2-shaped random-init model."""
    from tenfold.core.runtime import pick_device, seed_everything
    from tenfold.core.stats import paired_bootstrap
    from tenfold.lazydit.evaluate import Judge

    seed_everything(seed)
    settings = settings_for(profile)
    loaded = load(settings)
    val_judge = Judge.from_images(loaded.classifier, loaded.train.images)
    steps, macs = settings.steps, loaded.pipe.macs
    full = macs.full * steps
    val_labels = torch.arange(10).repeat_interleave(settings.n_val_per_class)
    recipe = settings.recipes[0]
    points = []
    for rho in recipe.rhos:
        gates, _ = trained_policy(settings, recipe, rho, seed, loaded)
        val = tune_threshold(settings, loaded, gates, val_judge, val_labels, VAL_NOISE + seed)
        points.append({"rho": rho, "gates": gates, "threshold": val.row["threshold"], "val": val.row})
    chosen = choose_rho(points, settings.target_macs, settings.macs_tolerance)
    match = matched_baselines(settings, macs, chosen["val"]["macs_ratio"])
    samplers = {"ddim": {}, "lazydit": {"gates": chosen["gates"], "threshold": chosen["threshold"]},
                "static-cache": {"gates": match["static-cache"]["gates"]}, "ddim-fewer": {"steps": match["ddim-fewer"]["steps"]}}
    labels = torch.arange(10).repeat_interleave(settings.n_val_per_class)
    repeats = 3 if profile == "smoke" else 5
    times = {name: [] for name in samplers}
    rows = {}
    for _ in range(repeats):  # interleaved, so slow phases of a shared machine hit every sampler alike
        for name, kw in samplers.items():
            kw = {"steps": steps} | kw
            res = loaded.pipe(labels, kw.pop("steps"), guidance_scale=1.0, output_type="pt",
                              generator=torch.Generator().manual_seed(TEST_NOISE + seed), **kw)
            times[name].append(res.seconds / len(labels))
            rows[name] = {"macs_ratio": res.macs / full, "skip_fraction": res.skip_fraction}
    for name in samplers:
        rows[name]["seconds_per_image"] = float(np.median(times[name]))
        rows[name]["seconds_per_image_repeats"] = times[name]
        rows[name]["speedup_vs_ddim"] = float(np.median(times["ddim"]) / np.median(times[name]))
    result = Result(method="lazydit", kind="bench", paper=PAPER, profile=profile, seed=seed,
                    config={"steps": steps, "images": len(labels), "repeats": repeats, "rho": chosen["rho"],
                            "threshold": chosen["threshold"],
                            "device": str(pick_device()), "model": settings.model or "zoo:tiny-dit"},
                    metrics={"samplers": rows})
    interval = paired_bootstrap(times["lazydit"], times["ddim"], unit="timed repeat", n_resamples=settings.resamples)
    result.claim("lazydit_faster_than_ddim", "LazyDiT's wall time per image is below full DDIM's on this device (null: "
                 "the gates' overhead eats the skipped work).", rows["lazydit"]["seconds_per_image"],
                 rows["ddim"]["seconds_per_image"], "DDIM", "lower", interval=interval)
    if pick_device().type == "cuda":
        from tenfold.lazydit.overhead import gating_overhead

        result.metrics["dit_xl2_gating_overhead"] = gating_overhead(steps=steps)
    return result


register(MethodSpec(
    name="lazydit", title=PAPER["title"], arxiv=PAPER["arxiv"], reproduce=reproduce, bench=bench,
    summary="Lazy learning layers before each MHSA/feedforward skip DiT work by reusing the previous step's output.",
))
