"""List construction (logged and simulated): history, ordering, padding, cold items, bad input."""

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

CFG = ListConfig(list_len=5, history_lists=3, ranker_epochs=5)


@pytest.fixture(scope="module")
def logged(toy_atomic):
    return build_logged_lists(load_atomic(toy_atomic), CFG)


def test_logged_lists_hold_candidates_in_initial_ranker_order(logged):
    for part in (logged.train, logged.test):
        s = np.where(part.mask, part.scores, -1e9)
        assert np.all(np.diff(s, axis=1)[part.mask[:, 1:]] <= 1e-6)
        assert set(np.unique(part.labels[part.mask])) <= {0.0, 1.0}
        assert not part.labels[~part.mask].any() and not part.items[~part.mask].any()


def test_lists_of_different_lengths_are_padded_with_masks(logged):
    lengths = logged.test.mask.sum(1)
    assert lengths.min() < CFG.list_len and lengths.max() == CFG.list_len
    assert np.all(logged.test.mask == (np.arange(CFG.list_len) < lengths[:, None]))


def test_history_is_the_users_previous_lists_with_labels(toy_atomic, logged):
    data = load_atomic(toy_atomic)
    user0 = data.inter[data.inter.user_id == "1"]
    rows = np.arange(len(user0))
    chunks = [rows[s: s + 5] for s in range(0, len(rows), 5)]
    test = logged.test.select(np.array([0]))
    last_hist = test.hist_mask[0, -1]
    assert last_hist.sum() == len(chunks[-2])  # the most recent history slot is the previous list
    got = sorted(test.hist_labels[0, -1][last_hist].tolist())
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


def test_users_with_empty_history_slots_are_masked(logged):
    empty_slots = ~logged.train.hist_mask.any(-1)
    assert empty_slots.any()  # early lists have fewer than history_lists predecessors
    assert not logged.train.hist_labels[empty_slots].any()


def test_lists_round_trip_through_safetensors(tmp_path, logged):
    logged.save(tmp_path / "l")
    back = ListSplits.load(tmp_path / "l")
    assert np.array_equal(back.test.items, logged.test.items) and back.test.meta == logged.test.meta
    assert back.info["train_lists"] == len(logged.train)


def test_simulated_lists_are_seeded_and_carry_relevance(toy_atomic):
    data = load_atomic(toy_atomic)
    sim = SimulatorConfig(lists_per_user=3, seed=3)
    a = build_simulated_lists(data, CFG, sim)
    b = build_simulated_lists(data, CFG, sim)
    assert np.array_equal(a.test.items, b.test.items) and np.array_equal(a.train.labels, b.train.labels)
    assert np.all((a.test.relevance > 0) & (a.test.relevance < 1))
    assert a.info["simulator"]["seed"] == 3 and "beta" in a.info["simulator"]["click"]
    assert len(a.test) == 8 and len(a.train) == 16


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
    with pytest.raises(InputError, match="lists_per_user"):
        build_simulated_lists(data, CFG, SimulatorConfig(lists_per_user=1))
    with pytest.raises(InputError, match="lists.json"):
        ListSplits.load(tmp_path)
