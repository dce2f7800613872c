"""Data: the synthetic generator (schema, determinism, real interest drift), labels, split and leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.data.movielens import AtomicDataset, click_labels, load_atomic, synthetic_lifelong, time_split
from tenfold.liber.interests import ItemCatalog
from tenfold.liber.partition import CountRule
from tenfold.liber.samples import build_ctr_data, with_split


def _era_shift(ds: AtomicDataset) -> float:
    """Mean over users of 1 - cos(genre histogram of liked items, first third vs last third)."""
    genres = dict(zip(ds.item["item_id"], ds.item["class"].str.split(), strict=True))
    out = []
    for _, rows in ds.inter.groupby("user_id"):
        liked = rows[rows["rating"] >= 4]
        third = len(liked) // 3
        hists = []
        for part in (liked.iloc[:third], liked.iloc[-third:]):
            h = pd.Series([g for i in part["item_id"] for g in genres[i]]).value_counts()
            hists.append(h)
        a, b = hists[0].align(hists[1], fill_value=0)
        out.append(1 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.mean(out))


def test_synthetic_data_is_seeded_has_the_atomic_schema_and_drifting_tastes():
    a, b = synthetic_lifelong(n_users=20, seed=3), synthetic_lifelong(n_users=20, seed=3)
    pd.testing.assert_frame_equal(a.inter, b.inter)
    assert list(a.inter.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert {"item_id", "movie_title", "release_year", "class"} <= set(a.item.columns)
    assert set(a.inter["rating"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert (a.inter.groupby("user_id")["timestamp"].diff().dropna() >= 0).all()
    drifting = _era_shift(synthetic_lifelong(n_users=40, seed=1, drift=1.5))
    stable = _era_shift(synthetic_lifelong(n_users=40, seed=1, drift=0.0))
    assert drifting > stable + 0.05  # eras really move what users like


def test_click_label_and_per_user_time_split_have_no_leakage():
    ds = synthetic_lifelong(n_users=15, seed=0)
    y = click_labels(ds.inter)
    assert np.array_equal(y, (ds.inter["rating"] >= 4).to_numpy().astype(int))
    split = time_split(ds.inter, 0.1, 0.2)
    frame = ds.inter.assign(split=split)
    for _, rows in frame.groupby("user_id"):
        times = {s: rows.loc[rows["split"] == s, "timestamp"] for s in ("train", "valid", "test")}
        assert times["train"].max() <= times["valid"].min() <= times["valid"].max() <= times["test"].min()
    with pytest.raises(InputError):
        time_split(ds.inter, 0.6, 0.6)


def test_no_sample_sees_a_partition_closed_at_or_after_its_timestamp():
    ds = synthetic_lifelong(n_users=12, seed=2)
    data = build_ctr_data(ds, CountRule(7), hist_len=5, max_partitions=3)
    closed = [p.closed_at for u in data.users for p in data.partitions[u]]
    owner = [u for u in data.users for _ in data.partitions[u]]
    slots, times, users = data.tensors["part_slots"], data.tensors["time"], data.tensors["user"]
    for r in range(len(times)):
        t, user = float(times[r]), data.users[int(users[r]) - 1]
        used = [int(s) for s in slots[r] if s >= 0]
        assert all(closed[s] < t and owner[s] == user for s in used)
        allowed = [p for p in data.partitions[user] if p.closed_at < t]
        assert len(used) == min(3, len(allowed))  # the newest usable ones, none missing
        if used:
            assert used[-1] - data.part_offset[user] == allowed[-1].pid


def test_loader_reads_user_atomic_files_and_unknown_items_are_refused(tmp_path):
    (tmp_path / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                        "1\t10\t5\t100\n1\t11\t2\t50\n2\t99\t4\t70\n")
    (tmp_path / "toy.item").write_text("item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
                                       "10\tSome Film\tDrama\n11\tOther\tHorror Comedy\n")
    ds = load_atomic(tmp_path)
    assert ds.inter["timestamp"].tolist() == [50.0, 100.0, 70.0]  # sorted per user by time
    catalog = ItemCatalog.from_frame(ds.item)
    with pytest.raises(InputError, match="item id '99' is not in the item table"):
        build_ctr_data(ds, CountRule(2))
    assert catalog.genres["11"] == ("Horror", "Comedy")


def test_user_split_is_disjoint_seeded_and_81_9_10():
    ds = synthetic_lifelong(n_users=100, events=(5, 10), seed=0)
    data = build_ctr_data(ds, CountRule(3), split="users", seed=4)
    split, users = data.tensors["split"], data.tensors["user"]
    groups = {k: set(users[split == k].tolist()) for k in (0, 1, 2)}
    assert [len(groups[k]) for k in (0, 1, 2)] == [81, 9, 10]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    again = build_ctr_data(ds, CountRule(3), split="users", seed=4).tensors["split"]
    other = build_ctr_data(ds, CountRule(3), split="users", seed=5).tensors["split"]
    assert torch.equal(split, again) and not torch.equal(split, other)
    assert data.split_mode == "users" and with_split(data, "time").split_mode == "time"
    with pytest.raises(InputError):
        with_split(data, "random")


def test_test_users_only_ever_see_their_own_earlier_behaviours():
    ds = synthetic_lifelong(n_users=30, seed=5)
    data = build_ctr_data(ds, CountRule(6), hist_len=4, max_partitions=3, split="users", seed=0)
    index = {it: i + 1 for i, it in enumerate(data.items)}
    closed = [p.closed_at for u in data.users for p in data.partitions[u]]
    owner = [u for u in data.users for _ in data.partitions[u]]
    user_of = data.tensors["user"].tolist()
    first = {u: user_of.index(u) for u in set(user_of)}
    test_rows = data.rows("test").tolist()
    assert test_rows
    for r in test_rows:
        user = data.users[user_of[r] - 1]
        t = float(data.tensors["time"][r])
        earlier = [index[b.item_id] for b in data.histories[user][:r - first[user_of[r]]]][-4:]
        hist = [int(x) for x in data.tensors["hist_items"][r] if x > 0]
        assert hist == earlier  # the backbone's history: the user's own, strictly earlier positions
        assert all(closed[s] < t and owner[s] == user for s in data.tensors["part_slots"][r].tolist() if s >= 0)


def _write_ml1m(folder, n_users=12, seed=0):
    """Files in RecBole's ml-1m atomic format (headers as RecBole's conversion tools write them)."""
    rng = np.random.default_rng(seed)
    genres = ["Action", "Comedy", "Drama", "Children's", "Sci-Fi"]
    items = [f"{i}\tFilm {i}\t{1950 + i % 50}\t{' '.join(rng.choice(genres, 2, replace=False))}" for i in range(1, 41)]
    (folder / "ml-1m.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
                                       + "\n".join(items) + "\n")
    users = [f"{u}\t{rng.choice(['1', '18', '25', '56'])}\t{rng.choice(['M', 'F'])}\t{rng.integers(0, 21)}\t0{u:04d}"
             for u in range(1, n_users + 1)]
    (folder / "ml-1m.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                       + "\n".join(users) + "\n")
    rows = []
    for u in range(1, n_users + 1):
        t = 978300000 + int(rng.integers(0, 10**6))
        for i in rng.choice(40, int(rng.integers(20, 40)), replace=False):
            t += int(rng.integers(1, 5000))
            rows.append(f"{u}\t{i + 1}\t{int(rng.integers(1, 6))}\t{t}")
    rng.shuffle(rows)  # the real file is not sorted by user and time either
    (folder / "ml-1m.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                        + "\n".join(rows) + "\n")


def test_ml1m_atomic_files_by_path_load_and_run_through_the_pipeline(tmp_path):
    from tenfold.liber.llm import RuleSummarizer
    from tenfold.liber.pipeline import encode_records, interest_records, load_data

    _write_ml1m(tmp_path)
    ds, synthetic = load_data(str(tmp_path))
    assert ds.name == "ml-1m" and not synthetic and list(ds.inter.columns)[:4] == ["user_id", "item_id", "rating",
                                                                                   "timestamp"]
    data = build_ctr_data(ds, CountRule(5), split="users", seed=0)
    assert data.catalog.genres["1"] and "Children's" in data.catalog.genre_names  # the 'genre' column is read
    assert any("aged " in p for p in data.profiles.values())  # ML-1M's age codes are groups, not ages
    records = interest_records(data, RuleSummarizer())
    table = encode_records(data, records, dim=4)
    assert table.shape == (data.n_partitions, 4 + len(data.catalog.genre_names) + 4)


def test_overlap_check_finds_a_test_rating_seen_in_training_and_a_test_sample_before_training():
    """`metrics.test_train_overlap` must count real overlaps (it once counted samples that were train *and*
    test at once, which is 0 by construction)."""
    from dataclasses import replace

    from tenfold.liber.experiment import _overlap

    data = build_ctr_data(synthetic_lifelong(n_users=6, events=(20, 30), seed=0), CountRule(5), split="time")
    assert _overlap(data) == {"shared_samples": 0, "shared_users": None, "test_before_train": 0}
    assert _overlap(with_split(data, "users")) == {"shared_samples": 0, "shared_users": 0, "test_before_train": None}
    split, user = data.tensors["split"], data.tensors["user"]
    test = int(data.rows("test")[0])
    train = int(torch.nonzero((split == 0) & (user == user[test]))[0])
    item, time = data.tensors["item"].clone(), data.tensors["time"].clone()
    item[test] = item[train]  # the user's training rating of an item, repeated as a test sample
    time[test] = time[train] - 1.0  # and dated before the user's training samples
    leaky = replace(data, tensors={**data.tensors, "item": item, "time": time})
    assert _overlap(leaky) == {"shared_samples": 1, "shared_users": None, "test_before_train": 1}
    users = with_split(data, "users")
    moved = users.tensors["split"].clone()
    moved[int(users.rows("train")[0])] = 2  # one of a training user's samples put in the test split
    assert _overlap(replace(users, tensors={**users.tensors, "split": moved}))["shared_users"] == 1
