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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from tenfold.core.errors import InputError, check

TASKS = ("boolean", "arithmetic")
ENCODINGS = ("prefix", "infix", "postfix")
SHAPES = ("random", "balanced", "skewed")
MAX_DEPTH = 32
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


def intermediate_values(f: Formula, modulus: int = 2) -> list[int]:
    """Chain of thought: the value of every operator node in postfix (evaluation) order; ends with the answer."""
    if isinstance(f, int):
        return [f]
    out: list[int] = []

    def walk(g: Formula) -> int:
        if isinstance(g, int):
            return g
        vals = [walk(c) for c in g[1:]]
        v = evaluate((g[0], *vals), modulus)
        out.append(v)
        return v

    walk(f)
    return out


def random_formula(task: str, d: int, rng: random.Random, modulus: int = 2, shape: str = "random") -> Formula:
    """A formula of depth exactly `d`. One operand of each operator carries the depth d - 1; the others
    are constants (`skewed`), full depth d - 1 (`balanced`) or depth uniform in 0..(d - 1) // 2 (`random`)."""
    if d == 0:
        return rng.randrange(2 if task == "boolean" else modulus)
    op = rng.choice(OPERATORS[task])
    deep = rng.randrange(ARITY[op])
    kids = []
    for i in range(ARITY[op]):
        if i == deep or shape == "balanced":
            kd = d - 1
        elif shape == "skewed":
            kd = 0
        else:
            kd = rng.randint(0, (d - 1) // 2)
        kids.append(random_formula(task, kd, rng, modulus, shape))
    return (op, *kids)


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
    """One formula instance: its tokens, exact answer, depth, size and chain-of-thought values."""

    tokens: tuple[str, ...]
    answer: int
    depth: int
    size: int
    cot: tuple[int, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"tokens": list(self.tokens), "answer": self.answer, "depth": self.depth, "size": self.size})


def make_instance(f: Formula, encoding: str, modulus: int) -> Instance:
    return Instance(tuple(encode(f, encoding)), evaluate(f, modulus), depth(f), size(f),
                    tuple(intermediate_values(f, modulus)))


def generate(task: str, d: int, n: int, encoding: str = "prefix", modulus: int = 2, seed: int = 0,
             shape: str = "random", max_size: int | None = None) -> list[Instance]:
    """`n` instances of depth exactly `d`, varied in shape, with few duplicates (retries before repeating)."""
    check_task(task, modulus)
    check(encoding in ENCODINGS, f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    check(shape in SHAPES, f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    check(isinstance(d, int) and 0 <= d <= MAX_DEPTH, f"depth must be an integer in 0..{MAX_DEPTH}, got {d!r}")
    check(isinstance(n, int) and n >= 1, f"n (number of instances) must be >= 1, got {n!r}")
    min_size = d + 1 if task == "boolean" else 2 * d + 1
    if max_size is not None:
        check(max_size >= min_size, f"max size {max_size} is too small for depth {d}: a {task} formula of depth {d} "
                                    f"has at least {min_size} nodes")
    if shape == "balanced" and task == "arithmetic":
        check(2 ** (d + 1) - 1 <= 100_000, f"balanced arithmetic formulas of depth {d} are too large (2^{d + 1} - 1 nodes)")
    rng = random.Random(f"{task}:{d}:{encoding}:{modulus}:{seed}:{shape}")
    seen: set[tuple[str, ...]] = set()
    out: list[Instance] = []
    tries = 0
    while len(out) < n:
        f = random_formula(task, d, rng, modulus, shape)
        tries += 1
        if max_size is not None and size(f) > max_size:
            check(tries < 1000 * n, f"could not draw depth-{d} formulas with at most {max_size} nodes: raise --max-size")
            continue
        inst = make_instance(f, encoding, modulus)
        if inst.tokens in seen and tries < 20 * n:
            continue
        seen.add(inst.tokens)
        out.append(inst)
    return out


def dataset(task: str, depths: Iterable[int], n_per_depth: int, encoding: str, modulus: int, seed: int,
            shape: str = "random") -> list[Instance]:
    """Instances for several depths (n_per_depth each), in a seeded shuffled order."""
    out = [i for d in depths for i in generate(task, d, n_per_depth, encoding, modulus, seed * 1000 + d, shape)]
    random.Random(seed).shuffle(out)
    return out


def split(instances: list[Instance], by: str, threshold: int) -> tuple[list[Instance], list[Instance]]:
    """(train, test) split by `depth` or `size`: train keeps values <= threshold, test the larger ones."""
    check(by in ("depth", "size"), f"split by must be 'depth' or 'size', got {by!r}")
    key = (lambda i: i.depth) if by == "depth" else (lambda i: i.size)
    return [i for i in instances if key(i) <= threshold], [i for i in instances if key(i) > threshold]


def write_jsonl(instances: list[Instance], path: str | Path) -> Path:
    from tenfold.core.io import atomic_write_text

    return atomic_write_text(Path(path), "".join(i.to_json() + "\n" for i in instances))


def read_jsonl(path: str | Path, task: str, encoding: str, modulus: int = 2) -> Iterator[Instance]:
    """Read a user's formula file (one {"tokens": [...], "answer"?: ...} a line); errors name the line."""
    check_task(task, modulus)
    path = Path(path)
    check(path.is_file(), f"formula file {path} does not exist")
    with path.open() as fh:
        for no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                tokens = [str(t) for t in row["tokens"]]
                f = parse(tokens, encoding, task, modulus)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise InputError(f"{path}:{no}: not a JSON object with a 'tokens' list ({err})") from err
            except InputError as err:
                raise InputError(f"{path}:{no}: {err}") from err
            inst = make_instance(f, encoding, modulus)
            if "answer" in row and row["answer"] != inst.answer:
                raise InputError(f"{path}:{no}: answer {row['answer']!r} disagrees with the formula's value {inst.answer}")
            yield inst
