"""UBSP: streaming replay equals batch build, rules behave as documented, bad input is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError, SchemaError
from tenfold.liber.partition import (
    AllRule,
    AnyRule,
    Behavior,
    CountRule,
    InterestShiftRule,
    StreamingPartitioner,
    TimeWindowRule,
    parse_rule,
    partition_history,
    usable_partitions,
)

GENRES = ("Action", "Comedy", "Drama", "Horror")

behaviors = st.lists(st.tuples(st.integers(0, 5), st.integers(1, 5), st.sampled_from(GENRES)), min_size=1, max_size=60)
simple_rules = st.one_of(
    st.builds(CountRule, st.integers(1, 8)),
    st.builds(TimeWindowRule, st.floats(1, 20), st.integers(1, 10)),
    st.builds(InterestShiftRule, st.floats(0, 1), st.integers(1, 4), st.integers(4, 12)),
)
rules = st.one_of(simple_rules, st.builds(lambda a, b: AnyRule((a, b)), simple_rules, simple_rules),
                  st.builds(lambda a, b: AllRule((a, b)), simple_rules, simple_rules))


def make_history(spec) -> list[Behavior]:
    t, out = 0.0, []
    for i, (gap, rating, genre) in enumerate(spec):
        t += gap
        out.append(Behavior(str(i), t, float(rating), (genre,)))
    return out


@settings(max_examples=60, deadline=None)
@given(behaviors, rules)
def test_replay_event_by_event_with_json_round_trip_equals_batch_build(spec, rule):
    history = make_history(spec)
    batch_parts, batch_cache = partition_history(history, rule)
    state = StreamingPartitioner(rule).to_json()
    for b in history:  # restore from JSON before every event: the state must be complete and serialisable
        part = StreamingPartitioner.from_json(state)
        part.on_event("u", b)
        state = part.to_json()
    final = StreamingPartitioner.from_json(state)
    assert final.partitions("u") == batch_parts
    assert final.users["u"].cache == batch_cache
    assert [b for p in batch_parts for b in p.behaviors] + batch_cache == history  # nothing lost or duplicated


def test_count_rule_cuts_exact_blocks_and_keeps_the_rest_open():
    parts, cache = partition_history(make_history([(1, 4, "Drama")] * 11), CountRule(4))
    assert [len(p.behaviors) for p in parts] == [4, 4] and len(cache) == 3
    assert [p.pid for p in parts] == [0, 1]
    assert parts[0].closed_at == 4.0


def test_time_window_rule_closes_at_window_span_or_max_len():
    history = make_history([(1, 4, "Drama")] * 3 + [(10, 4, "Drama")] + [(1, 4, "Drama")] * 2)  # t = 1 2 3 13 14 15
    parts, cache = partition_history(history, TimeWindowRule(window=5, max_len=10))
    assert [len(p.behaviors) for p in parts] == [4] and len(cache) == 2  # span 13 - 1 >= 5 closes at t=13
    parts, cache = partition_history(history, TimeWindowRule(window=100, max_len=4))
    assert [len(p.behaviors) for p in parts] == [4] and len(cache) == 2  # no span reached: max_len closes


def test_interest_shift_rule_closes_when_genres_move_away():
    history = make_history([(1, 4, "Drama")] * 4 + [(1, 4, "Horror")] * 4)
    parts, cache = partition_history(history, AnyRule((CountRule(4), InterestShiftRule(0.5, 2, 50))))
    assert [p.behaviors[0].genres for p in parts] == [("Drama",), ("Horror",)]
    assert [len(p.behaviors) for p in parts] == [4, 2]  # the shift closes as soon as min_len new behaviours differ
    assert len(cache) == 2  # the next Horror pair matches the last partition: no shift, stays open


def test_usable_partitions_are_closed_strictly_before_t():
    parts, _ = partition_history(make_history([(1, 4, "Drama")] * 8), CountRule(2))
    assert [p.pid for p in usable_partitions(parts, 4.0)] == [0]  # partition 1 closes at t=4: not before 4
    assert [p.pid for p in usable_partitions(parts, 4.5)] == [0, 1]


def test_unsorted_timestamps_and_empty_history_are_refused():
    history = [Behavior("a", 5.0, 4.0), Behavior("b", 3.0, 4.0)]
    with pytest.raises(InputError, match="not sorted"):
        partition_history(history, CountRule(2))
    part = StreamingPartitioner(CountRule(2))
    part.on_event("u", history[0])
    with pytest.raises(InputError, match="non-decreasing"):
        part.on_event("u", history[1])
    with pytest.raises(InputError, match="empty history"):
        partition_history([], CountRule(2))


def test_rule_parsing_round_trips_and_rejects_nonsense():
    rule = parse_rule("count:5|time:86400:30&shift:0.3")
    assert isinstance(rule, AnyRule) and rule.rules[0] == CountRule(5)
    part = StreamingPartitioner(rule)
    assert StreamingPartitioner.from_dict(json.loads(part.to_json())).rule == rule
    for bad in ("count", "count:x", "weekly:3", "count:0"):
        with pytest.raises(InputError):
            parse_rule(bad)
    with pytest.raises(SchemaError):
        StreamingPartitioner.from_json('{"schema": "other"}')
    with pytest.raises(SchemaError):
        StreamingPartitioner.from_json("not json")


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe\x93 garbage" * 8, b'{"schema": "tenfold.liber.ubsp/1", "rule"',
                                     b'{"schema": "tenfold.liber.ubsp/1"}', b'{"schema": "other"}', b"[]",
                                     b'{"schema": "tenfold.liber.ubsp/1", "rule": {"kind": "count", "k": 5}, "users": 3}'])
def test_a_corrupted_state_file_is_one_schema_error_naming_it(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(SchemaError, match="state.json"):
        StreamingPartitioner.load(path)


def test_a_state_file_round_trips_through_load(tmp_path):
    part = StreamingPartitioner(CountRule(2))
    part.extend("u", [Behavior(str(i), float(i), 4.0, ("Drama",)) for i in range(5)])
    path = tmp_path / "state.json"
    path.write_text(part.to_json())
    assert StreamingPartitioner.load(path).to_dict() == part.to_dict()
