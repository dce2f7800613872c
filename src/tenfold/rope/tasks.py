"""Formula-evaluation tasks: the Boolean formula value problem and arithmetic formula evaluation mod p.

A formula is a tree: a constant (a leaf, depth 0) or an operator node (depth 1 + max depth of its
operands). Boolean formulas use `and`, `or` (binary) and `not` (unary) over constants `0`, `1`;
arithmetic formulas use `+`, `*` (binary) over constants `0`..`p-1`, evaluated mod p. Both are
NC1-complete problems (Buss 1987; arithmetic formula evaluation over a finite field), which is why the
paper uses them for its TC0 lower bound.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from tenfold.core.errors import InputError, check

TASKS = ("boolean", "arithmetic")
ENCODINGS = ("prefix", "infix", "postfix")
FAMILIES = ("balanced", "skewed")
MAX_SIZE = 512  # nodes; the model's 512 positions hold a formula of up to 510 tokens, its '=' and its answer
MAX_COUNT = 1_000_000  # formulas per request (a 511-node formula takes 10-40 ms to draw on a loaded CPU core)
MAX_MISSES = 20_000  # consecutive draws that are all repeats or excluded: the family is exhausted, give up
P_NOT = 0.0  # and/or only: still NC1-complete (negations pushed to the leaves turn constants into constants)
MAX_MODULUS = 997
ARITY = {"and": 2, "or": 2, "not": 1, "+": 2, "*": 2}
OPERATORS = {"boolean": ("and", "or", "not"), "arithmetic": ("+", "*")}

Formula = Union[int, tuple]  # a constant, or (operator, operand, ...)


def check_task(task: str, modulus: int) -> None:
    check(task in TASKS, f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if task == "arithmetic":
        check(isinstance(modulus, int) and 2 <= modulus <= MAX_MODULUS,
              f"modulus must be an integer in 2..{MAX_MODULUS}, got {modulus!r}")


def constants(task: str, modulus: int) -> list[str]:
    return ["0", "1"] if task == "boolean" else [str(v) for v in range(modulus)]


@contextmanager
def recursion_room(frames: int = 4 * MAX_SIZE + 1000):
    """Room for the recursive tree walks below (about two frames per level): a formula of MAX_SIZE nodes can be
    MAX_SIZE - 1 levels deep (a chain of `not`), past Python's default limit of 1000 frames."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, frames))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def depth(f: Formula) -> int:
    return 0 if isinstance(f, int) else 1 + max(depth(c) for c in f[1:])


def size(f: Formula) -> int:
    """Number of nodes (constants and operators)."""
    return 1 if isinstance(f, int) else 1 + sum(size(c) for c in f[1:])


def evaluate(f: Formula, modulus: int = 2) -> int:
    """The exact value: 0/1 for Boolean formulas, 0..p-1 for arithmetic ones."""
    if isinstance(f, int):
        return f
    op, args = f[0], [evaluate(c, modulus) for c in f[1:]]
    if op == "and":
        return args[0] & args[1]
    if op == "or":
        return args[0] | args[1]
    if op == "not":
        return 1 - args[0]
    if op == "+":
        return (args[0] + args[1]) % modulus
    return (args[0] * args[1]) % modulus


def postfix_values(f: Formula, modulus: int = 2) -> list[int]:
    """Chain of thought: the value of the subformula that ends at each postfix token (a constant's own
    value, an operator's computed value), in postfix order; the last one is the answer."""
    out: list[int] = []

    def walk(g: Formula) -> int:
        if isinstance(g, int):
            out.append(g)
            return g
        v = evaluate((g[0], *[walk(c) for c in g[1:]]), modulus)
        out.append(v)
        return v

    walk(f)
    return out


def _split_budget(budget: int, odd: bool, rng: random.Random) -> tuple[int, int]:
    """Token budgets of two operands, as equal as possible (odd sizes when there is no unary operator)."""
    left = budget // 2
    if odd and left % 2 == 0:
        left -= 1
    return (left, budget - left) if rng.random() < 0.5 else (budget - left, left)


def sized_formula(task: str, n: int, family: str, rng: random.Random, modulus: int = 2,
                  p_not: float = P_NOT) -> Formula:
    """A formula of exactly `n` nodes (= tokens in prefix/postfix).

    `balanced`: every binary operator splits its budget evenly between its operands, so the depth is
    about log2 n (the hard family: full-depth formulas are where NC1-hardness lives). `skewed`: one
    operand (the second) of every binary operator is a constant, so the formula is a spine of depth ~n/2
    whose value is a composition, in reading order, of maps from {id, not, const 0, const 1} (Boolean) or
    x -> a x + b (mod p): a word problem over a solvable monoid, hence in TC0 (the control). Boolean `not` appears with
    probability `p_not` at every node of budget >= 3 (and always at budget 2); without it every formula
    has an odd number of nodes.
    """
    if n == 1:
        return rng.randrange(2 if task == "boolean" else modulus)
    if p_not > 0 and (n == 2 or rng.random() < p_not):
        return ("not", sized_formula(task, n - 1, family, rng, modulus, p_not))
    op = rng.choice([o for o in OPERATORS[task] if ARITY[o] == 2])
    if family == "balanced":
        a, b = _split_budget(n - 1, p_not == 0, rng)
    else:
        a, b = n - 2, 1  # postfix reads `... x c op`: the spine is a left fold over (op, constant) pairs
    return (op, sized_formula(task, a, family, rng, modulus, p_not), sized_formula(task, b, family, rng, modulus, p_not))


def encode(f: Formula, encoding: str) -> list[str]:
    """Token strings in prefix (`and 1 0`), infix (`( 1 and 0 )`, `( not 1 )`) or postfix (`1 0 and`)."""
    if isinstance(f, int):
        return [str(f)]
    op, kids = f[0], [encode(c, encoding) for c in f[1:]]
    if encoding == "prefix":
        return [op] + [t for k in kids for t in k]
    if encoding == "postfix":
        return [t for k in kids for t in k] + [op]
    if len(kids) == 1:
        return ["(", op, *kids[0], ")"]
    return ["(", *kids[0], op, *kids[1], ")"]


def parse(tokens: list[str], encoding: str, task: str, modulus: int = 2) -> Formula:
    """Inverse of `encode`; raises InputError on unknown operators/tokens or a malformed formula."""
    check(encoding in ENCODINGS, f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    consts, ops = set(constants(task, modulus)), set(OPERATORS[task])
    allowed = consts | ops | ({"(", ")"} if encoding == "infix" else set())
    for t in tokens:
        if t not in allowed:
            kind = "operator" if t in ARITY or not t.isdigit() else "constant"
            raise InputError(f"unknown {kind} {t!r} for task {task!r} ({encoding}); allowed: {' '.join(sorted(allowed))}")
    if encoding == "postfix":
        stack: list[Formula] = []
        for t in tokens:
            if t in ops:
                check(len(stack) >= ARITY[t], f"operator {t!r} lacks operands")
                args = stack[len(stack) - ARITY[t]:]
                del stack[len(stack) - ARITY[t]:]
                stack.append((t, *args))
            else:
                stack.append(int(t))
        check(len(stack) == 1, f"postfix formula leaves {len(stack)} values instead of 1")
        return stack[0]
    pos = 0

    def take() -> str:
        nonlocal pos
        check(pos < len(tokens), "formula ends too early")
        pos += 1
        return tokens[pos - 1]

    def prefix() -> Formula:
        t = take()
        return (t, *[prefix() for _ in range(ARITY[t])]) if t in ops else int(t)

    def infix() -> Formula:
        t = take()
        if t != "(":
            check(t in consts, f"expected a constant or '(', got {t!r}")
            return int(t)
        if tokens[pos:pos + 1] and tokens[pos] in ops and ARITY[tokens[pos]] == 1:
            op = take()
            f = (op, infix())
        else:
            left = infix()
            op = take()
            check(op in ops and ARITY[op] == 2, f"expected a binary operator, got {op!r}")
            f = (op, left, infix())
        check(take() == ")", "expected ')'")
        return f

    f = prefix() if encoding == "prefix" else infix()
    check(pos == len(tokens), f"{len(tokens) - pos} extra tokens after the formula")
    return f


@dataclass(frozen=True)
class Instance:
    """One formula: its tokens, exact answer, depth, size (nodes) and chain-of-thought values."""

    tokens: tuple[str, ...]
    answer: int
    depth: int
    size: int
    cot: tuple[int, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"tokens": list(self.tokens), "answer": self.answer, "depth": self.depth, "size": self.size})


def make_instance(f: Formula, encoding: str, modulus: int) -> Instance:
    return Instance(tuple(encode(f, encoding)), evaluate(f, modulus), depth(f), size(f),
                    tuple(postfix_values(f, modulus)))


def check_sized(task: str, n: int, family: str, modulus: int = 2, encoding: str = "postfix", p_not: float = P_NOT) -> None:
    """Boundary check of a (task, size, family) request; one line naming the bad value."""
    check_task(task, modulus)
    check(family in FAMILIES, f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    check(encoding in ENCODINGS, f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    check(isinstance(n, int) and 1 <= n <= MAX_SIZE, f"size must be an integer in 1..{MAX_SIZE}, got {n!r}")
    check(0 <= p_not < 1 and (p_not == 0 or task == "boolean"),
          f"p_not (probability of `not`) must be in [0, 1) and 0 for arithmetic, got {p_not!r}")
    check(p_not > 0 or n % 2 == 1, f"formulas of binary operators only have an odd number of nodes, got size {n}")


def generate(task: str, n: int, count: int, family: str = "balanced", encoding: str = "postfix", modulus: int = 2,
             seed: int | str = 0, exclude: frozenset[tuple[str, ...]] = frozenset(), unique: bool = False,
             p_not: float = P_NOT) -> list[Instance]:
    """`count` formulas of exactly `n` nodes, never one whose tokens are in `exclude`; with `unique`, all
    distinct (an InputError when the family has too few distinct formulas of that size)."""
    check_sized(task, n, family, modulus, encoding, p_not)
    check(isinstance(count, int) and 1 <= count <= MAX_COUNT,
          f"count (number of formulas) must be an integer in 1..{MAX_COUNT:,}, got {count!r}")
    modulus = 2 if task == "boolean" else modulus
    rng = random.Random(f"{task}:{n}:{family}:{encoding}:{modulus}:{seed}")
    seen: set[tuple[str, ...]] = set()
    out: list[Instance] = []
    budget, draws, misses = 200 * count + 1000, 0, 0
    with recursion_room():
        while len(out) < count and draws < budget and misses < MAX_MISSES:
            draws += 1
            inst = make_instance(sized_formula(task, n, family, rng, modulus, p_not), encoding, modulus)
            if inst.tokens in exclude or (unique and inst.tokens in seen):
                misses += 1
                continue
            misses = 0
            seen.add(inst.tokens)
            out.append(inst)
    if len(out) == count:
        return out
    raise InputError(f"found only {len(out)} of {count} {'distinct ' if unique else ''}{family} {task} formulas of "
                     f"size {n} outside the excluded ones in {draws:,} draws: ask for fewer, or a larger size")


def overlap(a: list[Instance], b: list[Instance]) -> int:
    """How many formulas of `a` have the same token string as some formula of `b`."""
    strings = {i.tokens for i in b}
    return sum(i.tokens in strings for i in a)


@dataclass(frozen=True)
class Splits:
    """Train / validation / test formulas of one (task, family, size), disjoint as token strings."""

    train: list[Instance]
    val: list[Instance]
    test: list[Instance]

    def stats(self) -> dict[str, int]:
        """Overlaps (all zero for splits made by `make_splits`) and the duplicates within training."""
        unique = len({i.tokens for i in self.train})
        return {"train_test_overlap": overlap(self.train, self.test), "train_val_overlap": overlap(self.train, self.val),
                "val_test_overlap": overlap(self.val, self.test), "train": len(self.train), "train_unique": unique,
                "train_duplicates": len(self.train) - unique, "val": len(self.val), "test": len(self.test)}


def check_disjoint(splits: Splits) -> dict[str, int]:
    """The split statistics, or an InputError when any two splits share a formula."""
    stats = splits.stats()
    shared = {k: v for k, v in stats.items() if k.endswith("overlap") and v}
    check(not shared, f"splits share formulas ({', '.join(f'{k} = {v}' for k, v in shared.items())}): "
                      "test accuracy would measure recall of training formulas")
    return stats


def make_splits(task: str, n: int, family: str, n_train: int, n_val: int, n_test: int, modulus: int = 2,
                encoding: str = "postfix", eval_seed: int = 0, train_seed: int = 0, p_not: float = P_NOT) -> Splits:
    """Distinct test and validation formulas (fixed by `eval_seed`), then `n_train` training draws (seeded by
    `train_seed`, repeats allowed and counted) that never equal a test or validation formula."""
    test = generate(task, n, n_test, family, encoding, modulus, f"test:{eval_seed}", unique=True, p_not=p_not)
    val = generate(task, n, n_val, family, encoding, modulus, f"val:{eval_seed}", frozenset(i.tokens for i in test),
                   unique=True, p_not=p_not)
    held_out = frozenset(i.tokens for i in test + val)
    train = generate(task, n, n_train, family, encoding, modulus, f"train:{train_seed}", held_out, p_not=p_not)
    splits = Splits(train, val, test)
    check_disjoint(splits)
    return splits


def write_jsonl(instances: list[Instance], path: str | Path) -> Path:
    from tenfold.core.io import atomic_write_text

    return atomic_write_text(Path(path), "".join(i.to_json() + "\n" for i in instances))


def read_jsonl(path: str | Path, task: str, encoding: str, modulus: int = 2) -> Iterator[Instance]:
    """Read a user's formula file (one {"tokens": [...], "answer"?: ...} a line); errors name the line."""
    check_task(task, modulus)
    path = Path(path)
    check(path.is_file(), f"formula file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text (byte {err.start}): expected JSONL, one "
                         '{"tokens": [...], "answer": ...} a line') from err
    except OSError as err:
        raise InputError(f"cannot read formula file {path} ({err.strerror or err})") from err
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            tokens = [str(t) for t in row["tokens"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise InputError(f"{path}:{no}: not a JSON object with a 'tokens' list ({err})") from err
        nodes = sum(t not in ("(", ")") for t in tokens)
        check(nodes <= MAX_SIZE, f"{path}:{no}: a formula of {nodes} nodes; at most {MAX_SIZE} are supported")
        try:
            with recursion_room():
                inst = make_instance(parse(tokens, encoding, task, modulus), encoding, modulus)
        except InputError as err:
            raise InputError(f"{path}:{no}: {err}") from err
        if "answer" in row and row["answer"] != inst.answer:
            raise InputError(f"{path}:{no}: answer {row['answer']!r} disagrees with the formula's value {inst.answer}")
        yield inst
