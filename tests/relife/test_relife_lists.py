"""List construction (logged and simulated): splits, history, ordering, padding, cold items, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tenfold.core.errors import InputError
from tenfold.data.lists import (
    COLD,
    ListConfig,
    ListSplits,
    SimulatorConfig,
    build_logged_lists,
    build_simulated_lists,
    pad_lists,
)
from tenfold.data.movielens import load_atomic
from tenfold.relife.experiment import disjoint_splits, split_overlap

CFG = ListConfig(list_len=5, history_lists=3, ranker_epochs=5)


@pytest.fixture(scope="module")
def logged(toy_atomic):
    return build_logged_lists(load_atomic(toy_atomic), CFG)


def test_logged_lists_hold_candidates_in_initial_ranker_order_with_propensity_one(logged):
    for part in (logged.train, logged.val, logged.test):
        s = np.where(part.mask, part.scores, -1e9)
        assert np.all(np.diff(s, axis=1)[part.mask[:, 1:]] <= 1e-6)
        assert set(np.unique(part.labels[part.mask])) <= {0.0, 1.0}
        assert not part.labels[~part.mask].any() and not part.items[~part.mask].any()
        assert np.all(part.propensity == 1.0) and not part.beta.any()


def test_every_user_has_one_test_list_and_test_lists_never_appear_in_training(logged):
    assert len(np.unique(logged.test.user)) == len(logged.test)
    assert set(logged.val.user) <= set(logged.test.user)
    assert split_overlap(logged) == {"test_in_train": 0, "test_in_val": 0}


def test_reproduce_refuses_splits_whose_test_lists_appear_in_training_or_validation(logged):
    """The overlap is checked in code, not only recorded: a leaking split stops the run before any training."""
    assert disjoint_splits(logged, "logged") == {"test_in_train": 0, "test_in_val": 0}
    leaky = ListSplits(logged.train, logged.test.select(np.arange(2)), logged.test, logged.info)
    with pytest.raises(RuntimeError, match="test_in_val"):
        disjoint_splits(leaky, "logged")


def test_lists_of_different_lengths_are_padded_with_masks(logged):
    lengths = logged.test.mask.sum(1)
    assert lengths.min() < CFG.list_len and lengths.max() == CFG.list_len
    assert np.all(logged.test.mask == (np.arange(CFG.list_len) < lengths[:, None]))


def test_history_is_the_users_previous_list_with_its_labels(toy_atomic, logged):
    data = load_atomic(toy_atomic)
    user0 = data.inter[data.inter.user_id == "1"]
    rows = np.arange(len(user0))
    chunks = [rows[s: s + 5] for s in range(0, len(rows), 5)]
    test = logged.test.select(np.array([0]))
    last = test.hist_mask[0, -1]
    assert last.sum() == len(chunks[-2])  # the most recent history slot is the previous list
    got = sorted(test.hist_labels[0, -1][last].tolist())
    want = sorted((user0.rating.to_numpy()[chunks[-2]] >= 4).astype(float).tolist())
    assert got == want


def test_items_never_seen_in_training_map_to_the_cold_start_index(toy_atomic):
    data = load_atomic(toy_atomic)
    fresh = data.inter.copy()
    last = fresh.index[fresh.user_id == "8"][-1]
    fresh.loc[last, "item_id"] = "99999"  # only ever appears in a test list
    splits = build_logged_lists(type(data)(data.name, fresh, data.item, data.user), CFG)
    assert (splits.test.items == COLD).any()
    assert splits.train.items.max() < splits.train.meta["n_items"]


def test_early_lists_have_masked_empty_history_slots(logged):
    empty = ~logged.train.hist_mask.any(-1)
    assert empty.any()
    assert not logged.train.hist_labels[empty].any() and not logged.train.hist_items[empty].any()


def test_lists_round_trip_through_safetensors(tmp_path, logged):
    logged.save(tmp_path / "l")
    back = ListSplits.load(tmp_path / "l")
    assert np.array_equal(back.test.items, logged.test.items) and back.test.meta == logged.test.meta
    assert np.array_equal(back.val.hist_scores, logged.val.hist_scores) and back.info["val_lists"] == len(logged.val)


def test_simulated_history_slots_are_the_previous_lists_of_the_same_user(toy_atomic):
    sim = build_simulated_lists(load_atomic(toy_atomic), CFG, SimulatorConfig(lists_per_user=5, test_lists=1, seed=1))
    test, val = sim.test, sim.val  # the validation list is each user's list just before the test list
    assert np.array_equal(test.user, val.user)
    assert np.array_equal(test.hist_items[:, -1], val.items) and np.array_equal(test.hist_labels[:, -1], val.labels)
    assert split_overlap(sim) == {"test_in_train": 0, "test_in_val": 0}


def test_bad_inputs_are_rejected(toy_atomic, tmp_path):
    with pytest.raises(InputError, match="list_len"):
        ListConfig(list_len=1)
    with pytest.raises(InputError, match="list_len"):
        pad_lists([[1, 2, 3]], 2)
    values, mask = pad_lists([[3, 4], [5]], 3)
    assert values.tolist() == [[3, 4, 0], [5, 0, 0]] and mask.sum() == 3
    data = load_atomic(toy_atomic)
    with pytest.raises(InputError, match="rating"):
        build_logged_lists(type(data)(data.name, data.inter.drop(columns="rating"), data.item, None), CFG)
    with pytest.raises(InputError, match="two lists"):
        build_logged_lists(data, ListConfig(list_len=50, min_list_len=50, ranker_epochs=1))
    with pytest.raises(InputError, match="lists.json"):
        ListSplits.load(tmp_path)
