"""Formula families, solvers and splits, checked against independent references (Python's own evaluation of
the infix text, a left fold for spines, set arithmetic for the splits)."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenfold.core.errors import InputError
from tenfold.rope import (
    ENCODINGS,
    Splits,
    check_disjoint,
    depth,
    encode,
    evaluate,
    generate,
    make_splits,
    overlap,
    parse,
    postfix_values,
    read_jsonl,
    size,
    sized_formula,
)

odd_sizes = st.integers(0, 40).map(lambda k: 2 * k + 1)


def python_value(f, task: str, modulus: int) -> int:
    """Independent reference: Python evaluates the infix text (and/or/not act on 0/1 ints as Boolean ops)."""
    text = " ".join(encode(f, "infix"))
    return int(eval(text)) if task == "boolean" else eval(text) % modulus  # noqa: S307 (our own generated text)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["boolean", "arithmetic"]), odd_sizes, st.sampled_from(["balanced", "skewed"]),
       st.sampled_from([2, 3, 5, 7]), st.integers(0, 10_000))
def test_sized_formulas_have_exact_size_and_the_family_depth(task, n, family, p, seed):
    modulus = 2 if task == "boolean" else p
    f = sized_formula(task, n, family, random.Random(seed), modulus)
    assert size(f) == n
    if family == "balanced":  # as even a split as odd operand sizes allow: the depth of a full binary tree
        assert depth(f) == math.ceil(math.log2(n + 1)) - 1
    else:
        assert depth(f) == (n - 1) // 2
    assert evaluate(f, modulus) == python_value(f, task, modulus)
    assert postfix_values(f, modulus)[-1] == evaluate(f, modulus) and len(postfix_values(f, modulus)) == n


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 60), st.floats(0.05, 0.6), st.integers(0, 999))
def test_not_gates_allow_any_size_and_keep_the_value_exact(n, p_not, seed):
    f = sized_formula("boolean", n, "balanced", random.Random(seed), 2, p_not)
    assert size(f) == n and evaluate(f) == python_value(f, "boolean", 2)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["boolean", "arithmetic"]), odd_sizes, st.integers(0, 999))
def test_a_spine_is_a_left_fold_over_its_operator_constant_pairs(task, n, seed):
    modulus = 2 if task == "boolean" else 5
    tokens = encode(sized_formula(task, n, "skewed", random.Random(seed), modulus), "postfix")
    value = int(tokens[0])  # postfix: x0 c1 op1 c2 op2 ...: apply each (op, constant) map in reading order
    ops = {"and": lambda a, b: a & b, "or": lambda a, b: a | b, "+": lambda a, b: (a + b) % modulus,
           "*": lambda a, b: a * b % modulus}
    for c, op in zip(tokens[1::2], tokens[2::2], strict=True):
        value = ops[op](value, int(c))
    assert value == evaluate(parse(tokens, "postfix", task, modulus), modulus)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["boolean", "arithmetic"]), odd_sizes, st.sampled_from(ENCODINGS), st.integers(0, 999))
def test_parse_inverts_encode_in_every_encoding(task, n, encoding, seed):
    f = sized_formula(task, n, "balanced", random.Random(seed), 5)
    assert parse(encode(f, encoding), encoding, task, 5) == f


def test_hand_worked_example():
    f = ("and", ("or", 0, 1), 0)
    assert encode(f, "postfix") == ["0", "1", "or", "0", "and"]
    assert encode(f, "infix") == ["(", "(", "0", "or", "1", ")", "and", "0", ")"]
    assert (evaluate(f), depth(f), size(f), postfix_values(f)) == (0, 2, 5, [0, 1, 1, 0, 0])
    assert postfix_values(("+", ("*", 2, 2), 2), 3) == [2, 2, 1, 2, 0]


def test_splits_are_disjoint_and_training_duplicates_are_counted():
    s = make_splits("boolean", 11, "balanced", 600, 50, 80, eval_seed=3, train_seed=1)
    test, val = {r.tokens for r in s.test}, {r.tokens for r in s.val}
    train = [r.tokens for r in s.train]
    assert len(test) == 80 and len(val) == 50 and not test & val and not (set(train) & (test | val))
    stats = s.stats()
    assert stats["train_test_overlap"] == stats["train_val_overlap"] == stats["val_test_overlap"] == 0
    assert stats["train_duplicates"] == len(train) - len(set(train)) > 0  # 600 draws from a small family repeat
    again = make_splits("boolean", 11, "balanced", 600, 50, 80, eval_seed=3, train_seed=2)
    assert [r.tokens for r in again.test] == [r.tokens for r in s.test]  # test set fixed across training seeds
    assert [r.tokens for r in again.train] != train


def test_overlapping_splits_are_refused():
    s = make_splits("boolean", 15, "skewed", 100, 20, 20)
    leaked = Splits(s.train + s.test[:3], s.val, s.test)
    assert overlap(leaked.train, leaked.test) == 3
    with pytest.raises(InputError, match="train_test_overlap = 3"):
        check_disjoint(leaked)


def test_bad_requests_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="odd number of nodes"):
        generate("boolean", 8, 5)
    with pytest.raises(InputError, match="family must be"):
        generate("boolean", 7, 5, family="random")
    with pytest.raises(InputError, match="p_not"):
        generate("arithmetic", 7, 5, modulus=3, p_not=0.2)
    with pytest.raises(InputError, match="modulus"):
        generate("arithmetic", 7, 5, modulus=1)
    with pytest.raises(InputError, match="found only 128 of 200 distinct"):  # 2^3 operators x 2^4 leaves
        generate("boolean", 7, 200, "balanced", unique=True)
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps({"tokens": ["1", "0", "and"]}) + "\n" + json.dumps({"tokens": ["1", "0", "xor"]}) + "\n")
    with pytest.raises(InputError, match=r"f.jsonl:2: unknown operator 'xor'"):
        list(read_jsonl(path, "boolean", "postfix"))
    path.write_text(json.dumps({"tokens": ["+", "7", "1"]}) + "\n")
    with pytest.raises(InputError, match=r":1: unknown constant '7'"):
        list(read_jsonl(path, "arithmetic", "prefix", 5))
    path.write_text(json.dumps({"tokens": ["1", "0", "and"], "answer": 1}) + "\n")
    with pytest.raises(InputError, match=":1: answer 1 disagrees"):
        list(read_jsonl(path, "boolean", "postfix"))


def test_damaged_files_are_refused_with_the_file_named(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\x89\xff\xfe binary \x00\x01 garbage")
    with pytest.raises(InputError, match=r"f.jsonl is not UTF-8 text"):
        list(read_jsonl(path, "boolean", "postfix"))
    path.write_text('{"tokens": ["1", "0", "an')  # truncated
    with pytest.raises(InputError, match=r"f.jsonl:1: not a JSON object with a 'tokens' list"):
        list(read_jsonl(path, "boolean", "postfix"))
    path.write_text(json.dumps({"tokens": ["1"] * 600}) + "\n")
    with pytest.raises(InputError, match=r":1: a formula of 600 nodes; at most 512"):
        list(read_jsonl(path, "boolean", "postfix"))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_deepest_allowed_formula_is_read_and_solved_exactly(tmp_path, encoding):
    """A chain of 511 `not`s (512 nodes, 511 levels: past Python's default recursion limit in every walk)."""
    tokens = {"prefix": ["not"] * 511 + ["1"], "postfix": ["1"] + ["not"] * 511,
              "infix": ["(", "not"] * 511 + ["1"] + [")"] * 511}[encoding]
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps({"tokens": tokens, "answer": 0}) + "\n")  # 511 negations of 1
    [inst] = read_jsonl(path, "boolean", encoding)
    assert (inst.answer, inst.depth, inst.size) == (0, 511, 512)
    assert min(r.depth for r in generate("boolean", 512, 2, p_not=0.9999, seed=1)) > 400  # drawn just as deep
