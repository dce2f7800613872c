"""The shared kernel: results, reports, runtime, I/O, progress and errors. Nothing method-specific."""
