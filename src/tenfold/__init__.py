"""tenfold: reference implementations of ten recent ML papers."""

__version__ = "0.1.0"
__all__ = ["__version__"]
