"""Baselines: DDIM step matching, static cache schedules, and L2C's budgeted schedule."""

from __future__ import annotations

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.lazydit.baselines import (
    L2CRouter,
    StaticSchedule,
    fewer_steps,
    static_cache_for_budget,
    static_cache_schedule,
)
from tenfold.lazydit.dit import MacsProfile

MACS = MacsProfile(full=100.0, attn=10.0, mlp=20.0, gate=1.0, num_layers=2)


def test_fewer_steps_matches_the_macs_ratio_and_rejects_nonsense():
    # the fewest steps with at least the given MACs
    assert fewer_steps(20, 0.5) == 10 and fewer_steps(20, 0.66) == 14 and fewer_steps(20, 0.01) == 1
    with pytest.raises(InputError):
        fewer_steps(20, 0.0)


def test_static_cache_computes_every_module_on_evenly_spaced_steps_including_the_first():
    sched = static_cache_schedule(10, 2, 4)
    computed_steps = sched.keep[:, 0, 0].nonzero().flatten().tolist()
    assert computed_steps == [0, 3, 6, 9]
    assert bool((sched.keep == sched.keep[:, :1, :1]).all())  # whole steps, all blocks and modules alike
    assert sched.saved_macs(MACS) == 6 * 2 * (10 + 20)
    with pytest.raises(InputError):
        static_cache_schedule(10, 2, 0)


def test_static_cache_for_budget_saves_the_most_without_exceeding_the_target():
    target = 5 * 2 * 30  # five reused steps
    assert static_cache_for_budget(10, 2, MACS, target).saved_macs(MACS) == target
    assert static_cache_for_budget(10, 2, MACS, target - 1).saved_macs(MACS) == 4 * 2 * 30


def test_l2c_schedule_skips_the_least_useful_modules_first_up_to_the_budget():
    router = L2CRouter(3, 2)
    with torch.no_grad():
        router.logits.copy_(torch.tensor([[[-9.0, -9.0], [-9.0, -9.0]],  # step 0: ignored, always computed
                                          [[-3.0, 2.0], [1.0, -2.0]],
                                          [[0.5, 3.0], [-1.0, 4.0]]]))
    sched = router.schedule_for_budget(MACS, target_saved=40.0)
    skipped = (~sched.keep).nonzero().tolist()
    # lowest logits at steps >= 1: (1,0,attn)=-3 (10 MACs), (1,1,mlp)=-2 (20), (2,1,attn)=-1 (10) -> 40
    assert sorted(skipped) == [[1, 0, 0], [1, 1, 1], [2, 1, 0]]
    assert sched.saved_macs(MACS) == 40.0
    s = sched.keep_probability("mlp", 1, 1, torch.zeros(3, 4, 5))
    assert torch.equal(s, torch.zeros(3))


def test_l2c_schedule_never_skips_inactive_steps():
    router = L2CRouter(3, 2, active=[2])
    with torch.no_grad():
        router.logits.fill_(-5.0)
    sched = router.schedule_for_budget(MACS, target_saved=1000.0)
    assert (~sched.keep).nonzero()[:, 0].unique().tolist() == [2]
    assert sched.saved_macs(MACS) == 2 * 30


def test_static_schedule_rejects_tables_of_the_wrong_shape():
    with pytest.raises(InputError):
        StaticSchedule(torch.ones(3, 2, 3, dtype=torch.bool))
