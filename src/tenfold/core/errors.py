"""Every user-facing failure is a TenfoldError whose message says what was wrong and what to do.

The CLI prints the message on one line and exits with code 2; `--debug` shows the traceback.
"""

from __future__ import annotations


class TenfoldError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 2


class InputError(TenfoldError, ValueError):
    """A bad argument, file or value supplied by the user."""


class SchemaError(TenfoldError):
    """A file that is corrupted or does not follow the expected schema."""


class UnknownNameError(TenfoldError, KeyError):
    """An unknown method, dataset or zoo entry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CacheError(TenfoldError):
    """A cache or output folder that cannot be used (not writable, wrong owner, corrupted)."""


class UnsupportedError(TenfoldError):
    """An architecture, scheduler or option that this method does not support."""


class BackendError(TenfoldError):
    """An external service (an LLM endpoint, say) failed or answered badly."""


class DryRunStop(TenfoldError):
    """Raised where long work would start under --dry-run: every argument and input was accepted."""

    exit_code = 0


def check(condition: bool, message: str, error: type[TenfoldError] = InputError) -> None:
    """Raise `error(message)` unless `condition` holds: the one-line boundary check."""
    if not condition:
        raise error(message)
