"""The reproduce protocol on tiny shapes, and a negative control for every claim: the claim's own
computation fed a null (a sampler against itself, LazyDiT that skips nothing, a baseline relabelled)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tenfold.core.results import Result
from tenfold.lazydit.experiment import (
    BASELINES,
    END_POINT,
    PAPER_RECIPE,
    Loaded,
    Run,
    Settings,
    add_fid_claim,
    compare,
    matched_baselines,
    run_experiment,
    sample_and_score,
)

TINY = Settings(steps=4, n_per_class=6, n_val_per_class=2, resamples=60, l2c=True,
                recipes=tuple(r.__class__(**{**r.__dict__, "iters": 3, "batch": 8, "rhos": (1e-2,)})
                              for r in (PAPER_RECIPE, END_POINT)))


@pytest.fixture()
def loaded(small_dit, small_classifier_dir):
    from tenfold.data.images import load_digits
    from tenfold.lazydit.dit import LazyDiTPipeline
    from tenfold.zoo.digit_classifier import load_digit_classifier

    model, scheduler = small_dit
    train, held_out = load_digits(8).split(0.2, seed=0)
    return Loaded(LazyDiTPipeline(model, scheduler), load_digit_classifier(small_classifier_dir), train, held_out)


def test_tiny_reproduce_writes_the_curve_the_tuned_comparisons_and_plots(loaded, tmp_path):
    result = run_experiment(TINY, tmp_path, [0], profile="test", loaded=loaded)
    ids = {c.id for c in result.claims}
    assert ids == {"paper_recipe_fid_below_ddim_fewer", "paper_recipe_fid_below_static_cache",
                   "end_point_fid_below_paper_recipe"}
    for c in result.claims:
        assert c.interval is not None and c.interval[0] <= c.difference <= c.interval[1]
        assert "test-image blocks" in c.evidence and "held-out" in c.evidence
        if c.id.startswith("paper_recipe"):  # the baseline may have up to the tolerance fewer MACs: say so
            assert f"at least its MACs less {TINY.macs_tolerance:g}" in c.statement
    samplers = {row["sampler"] for row in result.metrics["curve"]}
    assert {"ddim", "ddim-fewer", "static-cache", "paper", "end-point", "l2c"} <= samplers
    full = next(r for r in result.metrics["curve"] if r["sampler"] == "ddim")
    assert full["macs_ratio"] == pytest.approx(1.0) and full["skip_fraction"] == 0
    tuned = result.metrics["tuned"]["paper"][0]
    for base in BASELINES:  # never fewer MACs than LazyDiT, less the tolerance
        assert tuned["baselines"][base]["macs_ratio"] >= tuned["test"]["macs_ratio"] - TINY.macs_tolerance - 1e-9
    assert result.metrics["data"]["held_out_images"] == len(loaded.held_out.labels)
    for name in result.artifacts:
        assert (tmp_path / name).is_file()
    result.write(tmp_path)


def _run(loaded, settings, labels_seed: int = 0, **kwargs) -> Run:
    from tenfold.lazydit.evaluate import Judge

    judge = Judge.from_images(loaded.classifier, loaded.held_out.images)
    labels = torch.arange(10).repeat_interleave(settings.n_per_class)
    full = loaded.pipe.macs.full * settings.steps
    return sample_and_score(loaded, judge, labels, kwargs.pop("steps", settings.steps), labels_seed, full, **kwargs)


def _claim(loaded, settings, ours: Run, reference: Run) -> str:
    from tenfold.lazydit.evaluate import Judge

    judge = Judge.from_images(loaded.classifier, loaded.held_out.images)
    result = Result(method="lazydit", kind="reproduce", paper={})
    add_fid_claim(result, "null", "null", compare(settings, judge, [ours], [reference]), "reference")
    return result.claims[0].verdict


def test_lazydit_that_skips_nothing_meets_full_ddim_and_cannot_beat_it(loaded):
    """Null for both paper-recipe claims: untrained (zero) gates skip nothing, so the matched budget is full
    compute: DDIM-fewer becomes DDIM with every step, static caching computes every step, same images."""
    from tenfold.lazydit.gates import LazyGates

    settings = Settings(steps=4, n_per_class=6, n_val_per_class=2, resamples=60)
    lazy = _run(loaded, settings, gates=LazyGates.for_model(loaded.pipe.transformer, 4))
    match = matched_baselines(settings, loaded.pipe.macs, lazy.row["macs_ratio"])
    assert match["ddim-fewer"]["steps"] == 4 and bool(match["static-cache"]["gates"].keep.all())
    for base in (_run(loaded, settings, steps=match["ddim-fewer"]["steps"]),
                 _run(loaded, settings, gates=match["static-cache"]["gates"])):
        assert torch.equal(base.images, lazy.images)
        assert _claim(loaded, settings, lazy, base) != "holds"


def test_a_baseline_relabelled_as_ours_does_not_hold(loaded):
    """Null for the FID claims: the reference against itself gives an interval at zero, never 'holds'."""
    from tenfold.lazydit.baselines import static_cache_schedule

    settings = Settings(steps=4, n_per_class=6, n_val_per_class=2, resamples=60)
    for run in (_run(loaded, settings, steps=2), _run(loaded, settings, gates=static_cache_schedule(4, 2, 2))):
        assert _claim(loaded, settings, run, run) == "inconclusive"


def test_the_ablation_with_both_recipes_equal_does_not_hold(loaded):
    """Null for the ablation: the paper recipe's samples relabelled as the end-point objective's; and two
    different noise draws of the same sampler (no systematic difference) stay short of 'holds'."""
    settings = Settings(steps=4, n_per_class=6, n_val_per_class=2, resamples=60)
    paper = _run(loaded, settings, steps=3)
    assert _claim(loaded, settings, paper, paper) == "inconclusive"
    other_noise = _run(loaded, settings, labels_seed=1, steps=3)
    assert _claim(loaded, settings, other_noise, paper) != "holds"


def test_the_bench_claim_with_equal_timings_does_not_hold():
    from tenfold.core.stats import paired_bootstrap

    times = [0.010, 0.012, 0.011]
    result = Result(method="lazydit", kind="bench", paper={})
    result.claim("null", "null", float(np.median(times)), float(np.median(times)), "DDIM", "lower",
                 interval=paired_bootstrap(times, times, unit="timed repeat"))
    assert result.claims[0].verdict == "inconclusive"


def test_profiles_and_bad_settings():
    from tenfold.core.errors import InputError
    from tenfold.lazydit.experiment import PROFILES, settings_for

    assert set(PROFILES) == {"smoke", "quick", "full"}
    assert settings_for("quick").recipes[0].name == "paper" and settings_for("quick").recipes[0].lr == 1e-4
    with pytest.raises(InputError, match="profile"):
        settings_for("medium")
    with pytest.raises(InputError, match="paper"):
        Settings(recipes=(END_POINT,))


@pytest.mark.slow
def test_quick_reproduce_end_to_end(tmp_path):
    from tenfold.lazydit.experiment import reproduce

    result = reproduce("quick", 0, tmp_path)
    full = next(r for r in result.metrics["curve"] if r["sampler"] == "ddim")
    assert full["class_acc"] > 0.8  # the zoo DiT draws recognisable digits
    assert {c.verdict for c in result.claims} <= {"holds", "inconclusive", "fails"}


def test_the_budget_threshold_is_the_smallest_that_meets_the_budget(loaded):
    """Zero gates give s = 0.5 everywhere: at threshold 0.5 nothing is skipped (over a 0.8 budget), above it
    every gated step is skipped, so the search must land on the first grid value above 0.5."""
    from tenfold.lazydit.evaluate import Judge
    from tenfold.lazydit.experiment import THRESHOLDS, tune_threshold
    from tenfold.lazydit.gates import LazyGates

    settings = Settings(steps=4, n_per_class=2, n_val_per_class=2, target_macs=0.8)
    judge = Judge.from_images(loaded.classifier, loaded.train.images)
    run = tune_threshold(settings, loaded, LazyGates.for_model(loaded.pipe.transformer, 4), judge,
                         torch.arange(10).repeat_interleave(2), noise_seed=0)
    assert run.row["threshold"] == min(t for t in THRESHOLDS if t > 0.5)
    assert run.row["macs_ratio"] <= 0.8 + settings.macs_tolerance and run.row["skip_fraction"] == pytest.approx(0.5)


def test_the_held_out_digits_share_no_image_with_the_training_split():
    """The FID reference trained nothing: the split is disjoint by index, and no held-out pixel grid repeats a
    training image (the count `metrics.data` reports)."""
    from tenfold.data.images import load_digits
    from tenfold.lazydit.experiment import data_overlap

    train, held_out = load_digits(size=8).split(0.2, seed=0)
    data = data_overlap(train, held_out)
    assert data["held_out_identical_to_a_training_image"] == 0
    assert data["train_images"] + data["held_out_images"] == len(load_digits(size=8).labels)
