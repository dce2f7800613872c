"""Atomic writes, safetensors save/load, and checkpoint + resume for long loops.

Nothing is ever written in place: a file is written to a temporary sibling, flushed, fsync'd and
renamed over the target, so a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tenfold.core.errors import CacheError, SchemaError


def ensure_writable_dir(path: Path) -> None:
    """Create `path` if needed; a CacheError saying what to do when it cannot be a writable folder."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise CacheError(f"{p} is a file, not a folder: choose another output folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (OSError, NotADirectoryError) as err:
        raise CacheError(f"cannot create folder {path} ({err.strerror}): choose a writable location") from err
    if not os.access(path, os.W_OK):
        raise CacheError(f"folder {path} is not writable: fix its permissions or choose another location")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and rename the result over `path` in one atomic step.

    Every OS error on the way (permission, missing or read-only location, disk full) becomes one
    CacheError naming the file and the reason: the one place where writing fails cleanly.
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    tmp_path = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp_path = Path(tmp)
        write(tmp_path)
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except OSError as err:
        raise CacheError(f"cannot write {path} ({err.strerror or err}): choose a writable location with free space") from err
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SchemaError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}): delete or regenerate it") from err
    except UnicodeDecodeError as err:
        raise SchemaError(f"{path} is not UTF-8 text: delete or regenerate it") from err


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Save tensors as safetensors, atomically (never pickle)."""
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(flat, str(tmp), metadata=metadata))


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"no tensor file at {path}")
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:  # safetensors raises its own error types
        raise SchemaError(f"{path} is not a readable safetensors file ({err}): delete it and rerun") from err


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state (dicts, lists, tensors, plain values) into tensors and a JSON skeleton."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[key] = node
            return {"__tensor__": key}
        if isinstance(node, dict):
            return {"__dict__": [[k, walk(v, f"{key}.{k}")] for k, v in node.items()]}
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(node)]
        return node

    return tensors, walk(state, prefix or "s")


def unflatten_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    if isinstance(skeleton, dict) and "__tensor__" in skeleton:
        return tensors[skeleton["__tensor__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {k: unflatten_state(tensors, v) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten_state(tensors, v) for v in skeleton]
    return skeleton


class Checkpoint:
    """Checkpoint + resume for a long loop: `state = ckpt.load()` then `ckpt.save(state)` every so often.

    The state is any nesting of dicts, lists, tensors and JSON values (model and optimizer
    `state_dict()`s, a step counter, an RNG state). Tensors go to safetensors, the rest to JSON, both
    written atomically, the JSON last, so a crash mid-save leaves the previous checkpoint usable.
    """

    def __init__(self, folder: str | os.PathLike, name: str = "checkpoint"):
        self.folder = Path(folder)
        self.name = name

    @property
    def _meta(self) -> Path:
        return self.folder / f"{self.name}.json"

    def exists(self) -> bool:
        return self._meta.is_file()

    def save(self, state: Any) -> None:
        """Write the state (only the main process of a distributed launch writes)."""
        from tenfold.core.runtime import is_main_process

        if not is_main_process():
            return
        tensors, skeleton = flatten_state(state)
        meta = read_json(self._meta) if self.exists() else {}
        generation = int(meta.get("generation", 0)) + 1
        tensor_file = f"{self.name}.{generation % 2}.safetensors"  # alternate: never overwrite the live one
        save_tensors(self.folder / tensor_file, tensors)
        atomic_write_json(self._meta, {"generation": generation, "tensors": tensor_file, "state": skeleton})

    def load(self, default: Any = None) -> Any:
        if not self.exists():
            return default
        meta = read_json(self._meta)
        try:
            tensors = load_tensors(self.folder / meta["tensors"])
            return unflatten_state(tensors, meta["state"])
        except (KeyError, TypeError) as err:
            raise SchemaError(f"checkpoint {self._meta} is damaged: delete {self.folder} to start over") from err

    def clear(self) -> None:
        for path in self.folder.glob(f"{self.name}.*"):
            path.unlink()


def tenfold_home() -> Path:
    """The cache root: $TENFOLD_HOME, else ~/.cache/tenfold (checked writable)."""
    root = Path(os.environ.get("TENFOLD_HOME") or Path.home() / ".cache" / "tenfold").expanduser()
    ensure_writable_dir(root)
    return root


def cache_dir(*parts: str) -> Path:
    """A writable folder under the cache root, e.g. cache_dir('zoo', 'tiny-lm')."""
    path = tenfold_home().joinpath(*parts)
    ensure_writable_dir(path)
    return path
