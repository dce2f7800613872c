"""The ten papers and how their subpackages are found.

A method lands by adding its subpackage with an `experiment.py` that calls
`tenfold.core.registry.register(MethodSpec(...))`; nothing here needs an edit.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from tenfold.core.errors import UnknownNameError
from tenfold.core.registry import MethodSpec, registered


@dataclass(frozen=True)
class Paper:
    name: str
    title: str
    arxiv: str


# Order follows the developers' guide. arXiv ids are checked in each method's docs page.
PAPERS: tuple[Paper, ...] = (
    Paper("prune", "Numerical Pruning for Efficient Autoregressive Models", "2412.12441"),
    Paper("lazydit", "LazyDiT: Lazy Learning for the Acceleration of Diffusion Transformers", "2412.12444"),
    Paper("ind", "A Structure-Enhanced Language Model for Incorrect Assignment Detection (MIND)", "2412.03930"),
    Paper("liber", "LIBER: Lifelong User Behavior Modeling Based on Large Language Models", "2411.14713"),
    Paper("rope", "Circuit Complexity Bounds for RoPE-based Transformer Architecture", "2411.07602"),
    Paper("plmscale", "Training Compute-Optimal Protein Language Models", "2411.02142"),
    Paper("relife", "Beyond Positive History: Re-ranking with List-level Hybrid Feedback (RELIFE)", "2410.20778"),
    Paper("looped", "Bypassing the Exponential Dependency: Looped Transformers Efficiently Learn In-context by Multi-step Gradient Descent", "2410.11268"),
    Paper("hsr", "HSR-Enhanced Sparse Attention Acceleration", "2410.10165"),
    Paper("wgae", "Graph Poisson Factor Analysis, GPGBN and Weibull Graph Auto-Encoders", "2410.09696"),
)
NAMES = tuple(p.name for p in PAPERS)


def paper(name: str) -> Paper:
    for p in PAPERS:
        if p.name == name:
            return p
    raise UnknownNameError(f"unknown method {name!r}: choose one of {', '.join(NAMES)}")


def is_implemented(name: str) -> bool:
    """A method is implemented once its subpackage has an experiment module."""
    return importlib.util.find_spec(f"tenfold.{name}") is not None and \
        importlib.util.find_spec(f"tenfold.{name}.experiment") is not None


def load(name: str) -> MethodSpec | None:
    """Import the method's experiment module (which registers it); None when not implemented yet."""
    paper(name)
    if not is_implemented(name):
        return None
    importlib.import_module(f"tenfold.{name}.experiment")
    return registered().get(name)


def parse_only(only: str | None) -> list[str]:
    """`--only prune,hsr` -> ["prune", "hsr"], with a clear error on an unknown name."""
    if not only:
        return list(NAMES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    for n in names:
        paper(n)
    return names
