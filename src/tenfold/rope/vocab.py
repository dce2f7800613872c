"""The token vocabulary of a task: pad, '=', parentheses, operators and the constants 0..p-1."""

from __future__ import annotations

from dataclasses import dataclass

from tenfold.core.errors import InputError
from tenfold.rope.tasks import OPERATORS, check_task, constants

SPECIALS = ("<pad>", "=", "(", ")")


@dataclass(frozen=True)
class Vocab:
    task: str
    modulus: int
    tokens: tuple[str, ...]

    @classmethod
    def build(cls, task: str, modulus: int = 2) -> Vocab:
        check_task(task, modulus)
        return cls(task, modulus, SPECIALS + OPERATORS[task] + tuple(constants(task, modulus)))

    @property
    def pad(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, tokens: list[str] | tuple[str, ...], where: str = "") -> list[int]:
        """Token ids; a token outside the vocabulary raises InputError naming it (and `where`)."""
        index = {t: i for i, t in enumerate(self.tokens)}
        out = []
        for t in tokens:
            if t not in index:
                raise InputError(f"{where + ': ' if where else ''}token {t!r} is not in the {self.task} vocabulary "
                                 f"({' '.join(self.tokens[1:])})")
            out.append(index[t])
        return out

    def value_id(self, value: int) -> int:
        return self.tokens.index(str(value))
