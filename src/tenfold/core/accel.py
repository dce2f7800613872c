"""Training loops on Hugging Face `accelerate`: one `Accelerator` owns device placement, mixed
precision, gradient accumulation and data-parallel wrapping, so the same loop runs as one process
(the default, numbers unchanged) or under `accelerate launch --num_processes N tenfold ...` (and an
accelerate config with DeepSpeed ZeRO or FSDP) on N devices.

How a loop uses it (see docs/architecture.md, "Scaling out"):

    acc = accelerator()                                  # honours --device and --mixed-precision
    model, opt = acc.prepare(model, opt)
    for step in ...:
        idx = local_slice(global_batch_indices, acc)     # this process's share of the global batch
        with acc.accumulate(model):
            loss = ...; acc.backward(loss); opt.step(); opt.zero_grad()
    if acc.is_main_process: save(...)                   # Checkpoint and Result.write check this too

Each process computes the mean loss over its share; DDP averages gradients across processes, so with
equal shares the update equals the single-process update on the whole global batch.
"""

from __future__ import annotations

import atexit
import resource
import sys
from pathlib import Path

import torch

from tenfold.core.errors import InputError
from tenfold.core.runtime import mixed_precision_setting, pick_device, work_starts

MIXED_PRECISION = ("no", "bf16", "fp16")
_cached: dict = {}


def check_mixed_precision(mode: str, device: torch.device) -> str:
    """Refuse a precision the hardware lacks (one line naming it), before any work starts."""
    if mode not in MIXED_PRECISION:
        raise InputError(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION)}, got {mode!r}")
    if mode == "fp16" and device.type != "cuda":
        raise InputError(f"--mixed-precision fp16 needs a CUDA GPU, but this run is on {device.type}: use no (or bf16 on a "
                         "GPU or a CPU with bf16 instructions)")
    if mode == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise InputError(f"--mixed-precision bf16: the GPU {torch.cuda.get_device_name(device)} has no bfloat16 "
                             "support; use fp16 or no")
        if device.type == "cpu" and "AVX512" not in torch.backends.cpu.get_cpu_capability().upper():
            raise InputError(f"--mixed-precision bf16: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no "
                             "bfloat16 instructions (AVX512-BF16/AMX); use no")
    return mode


def accelerator(mixed_precision: str | None = None, gradient_accumulation_steps: int = 1):
    """The process's `Accelerator` for the chosen device and precision (one per setting, reused)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if gradient_accumulation_steps < 1:
        raise InputError(f"gradient accumulation steps must be at least 1, got {gradient_accumulation_steps}")
    device = pick_device()
    mode = check_mixed_precision(mixed_precision or mixed_precision_setting(), device)
    work_starts("training")
    key = (device.type, mode, gradient_accumulation_steps)
    if key not in _cached:
        if _cached:  # accelerate keeps one global state; a different setting needs a fresh one
            AcceleratorState._reset_state(reset_partial_state=False)
            GradientState._reset_state()
            _cached.clear()
        _cached[key] = Accelerator(cpu=device.type == "cpu", mixed_precision=mode,
                                   gradient_accumulation_steps=gradient_accumulation_steps)
    return _cached[key]


def _end_distributed() -> None:
    """Tear the process group down before the interpreter exits: left to exit, gloo's threads can outlive it and
    abort the process ("terminate called without an active exception", SIGABRT), failing a launch whose work
    had finished (seen about one run in eight of a two-process CPU test)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


atexit.register(_end_distributed)  # a no-op unless a multi-process launch initialised a process group


def local_slice(items, acc=None):
    """This process's share of a global batch (every process gets a contiguous, equal part).

    The global batch size must divide by the number of processes, so that averaging the processes'
    gradients equals the gradient of the whole batch.
    """
    world = acc.num_processes if acc is not None else 1
    rank = acc.process_index if acc is not None else 0
    n = len(items)
    if n % world:
        raise InputError(f"a global batch of {n} does not split evenly over {world} processes: choose a batch size "
                         f"divisible by {world}")
    share = n // world
    return items[rank * share:(rank + 1) * share]


def peak_memory(device: torch.device | None = None) -> tuple[int, str]:
    """(bytes, what was measured): CUDA's peak allocation on a GPU, else the process's peak RSS."""
    device = device or pick_device()
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "CUDA max allocated"
    status = Path("/proc/self/status")
    if status.is_file():  # Linux: VmHWM is this process's own peak (ru_maxrss carries a fork parent's peak)
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024, "peak RSS"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "peak RSS"


def device_summary(dtype: str | None = None) -> str:
    """One line for the end of a long command: device, dtype, peak memory."""
    device = pick_device()
    mode = mixed_precision_setting()
    dtype = dtype or ("float32" if mode == "no" else f"{mode} mixed precision")
    used, how = peak_memory(device)
    return f"device {device}, {dtype}, peak memory {used / 2**20:,.0f} MiB ({how})"
