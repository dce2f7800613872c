"""Formula generators and solvers, checked against Python's own evaluation of the infix string."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.rope import (
    ENCODINGS,
    depth,
    encode,
    evaluate,
    generate,
    intermediate_values,
    parse,
    read_jsonl,
    size,
    split,
)
from tenfold.rope.tasks import random_formula


def python_value(f, task: str, modulus: int) -> int:
    """Independent reference: Python evaluates the infix text (and/or/not act on 0/1 ints as Boolean ops)."""
    text = " ".join(encode(f, "infix"))
    return int(eval(text)) if task == "boolean" else eval(text) % modulus  # noqa: S307 (our own generated text)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["boolean", "arithmetic"]), st.integers(0, 7), st.sampled_from(["random", "balanced", "skewed"]),
       st.integers(2, 13), st.integers(0, 10_000))
def test_solver_matches_python_evaluation_and_depth_is_exact(task, d, shape, p, seed):
    import random

    modulus = 2 if task == "boolean" else p
    f = random_formula(task, d, random.Random(seed), modulus, shape)
    assert depth(f) == d
    assert evaluate(f, modulus) == python_value(f, task, modulus)
    assert intermediate_values(f, modulus)[-1] == evaluate(f, modulus)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["boolean", "arithmetic"]), st.integers(0, 6), st.sampled_from(ENCODINGS), st.integers(0, 999))
def test_parse_inverts_encode_in_every_encoding(task, d, encoding, seed):
    import random

    f = random_formula(task, d, random.Random(seed), 5)
    assert parse(encode(f, encoding), encoding, task, 5) == f


def test_hand_worked_examples():
    f = ("and", ("not", 0), ("or", 0, 1))
    assert encode(f, "prefix") == ["and", "not", "0", "or", "0", "1"]
    assert encode(f, "postfix") == ["0", "not", "0", "1", "or", "and"]
    assert encode(f, "infix") == ["(", "(", "not", "0", ")", "and", "(", "0", "or", "1", ")", ")"]
    assert (evaluate(f), depth(f), size(f), intermediate_values(f)) == (1, 2, 6, [1, 1, 1])
    g = ("+", ("*", 3, 4), 2)
    assert evaluate(g, 5) == 4 and intermediate_values(g, 5) == [2, 4]


def test_generate_gives_exact_depth_few_duplicates_and_splits():
    rows = generate("boolean", 4, 200, "postfix", seed=1)
    assert all(r.depth == 4 for r in rows)
    assert len({r.tokens for r in rows}) >= 190
    mixed = rows + generate("boolean", 1, 20, "postfix", seed=1)
    train, test = split(mixed, "depth", 2)
    assert {r.depth for r in train} == {1} and {r.depth for r in test} == {4}


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="depth must be"):
        generate("boolean", -1, 5)
    with pytest.raises(InputError, match="depth must be"):
        generate("boolean", 99, 5)
    with pytest.raises(InputError, match="too small for depth 5"):
        generate("arithmetic", 5, 5, modulus=5, max_size=4)
    with pytest.raises(InputError, match="modulus"):
        generate("arithmetic", 2, 5, modulus=1)
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps({"tokens": ["and", "1", "0"]}) + "\n" + json.dumps({"tokens": ["xor", "1", "0"]}) + "\n")
    with pytest.raises(InputError, match=r"f.jsonl:2: unknown operator 'xor'"):
        list(read_jsonl(path, "boolean", "prefix"))
    path.write_text(json.dumps({"tokens": ["+", "7", "1"]}) + "\n")
    with pytest.raises(InputError, match=r":1: unknown constant '7'"):
        list(read_jsonl(path, "arithmetic", "prefix", 5))
    path.write_text(json.dumps({"tokens": ["and", "1", "0"], "answer": 1}) + "\n")
    with pytest.raises(InputError, match=":1: answer 1 disagrees"):
        list(read_jsonl(path, "boolean", "prefix"))
