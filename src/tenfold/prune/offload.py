"""One decoder layer on the compute device at a time: pruning models larger than one device.

A model may be spread with accelerate's `device_map` over several devices, or offloaded (its
weights on the `meta` device, loaded from CPU memory or a disk folder by accelerate's hooks at each
forward). Pruning works on one layer at a time (the SparseGPT / Wanda pattern): `materialised`
brings that layer's real weights onto the compute device without hooks, the layer is scored,
compensated and shrunk there, and afterwards it goes back where it lived:

- a layer that lived on a device (cpu, cuda:i) goes back to it, with a hook that runs it there;
- a layer that was offloaded comes back offloaded to CPU memory (its pruned weights in a CPU
  dictionary, loaded onto its execution device at each forward, as `accelerate.cpu_offload` does);
  an unmodified layer gets its original hooks back, so a disk-offloaded model is never loaded whole.

Only one layer's weights and statistics are on the compute device at any time.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


def _hooks(layer: nn.Module) -> dict[str, object]:
    return {name: m._hf_hook for name, m in layer.named_modules() if hasattr(m, "_hf_hook")}


def execution_device(model: nn.Module, layer: nn.Module) -> torch.device:
    """Where a layer computes: its (or its modules') accelerate hook's execution device, else where its
    weights are, else where the model computes."""
    for scope in (layer, model):
        for m in scope.modules():
            device = getattr(getattr(m, "_hf_hook", None), "execution_device", None)
            if device is not None:
                return torch.device(device)
        for p in scope.parameters():
            if p.device.type != "meta":
                return p.device
    return torch.device("cpu")


def is_dispatched(model: nn.Module) -> bool:
    """True when accelerate hooks place the model's modules (device_map / offload)."""
    return any(hasattr(m, "_hf_hook") for m in model.modules())


@contextmanager
def materialised(layer: nn.Module, device: torch.device, home: torch.device | None = None, modified: bool = True):
    """Within the block, `layer` holds real weights on `device` and has no accelerate hooks.

    `home` is where the layer computes afterwards (default: where it computed before). With
    `modified=False` the layer comes back exactly as it was (original devices and hooks).
    """
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module, remove_hook_from_module
    from accelerate.utils import set_module_tensor_to_device

    hooks = _hooks(layer)
    home = home or execution_device(layer, layer)
    places = {name: t.device for name, t in [*layer.named_parameters(), *layer.named_buffers()]}
    offloaded = False
    for name, hook in hooks.items():
        if getattr(hook, "offload", False):
            module = layer.get_submodule(name)
            for pname, p in list(module.named_parameters(recurse=False)):
                if p.device.type == "meta":
                    offloaded = True
                    set_module_tensor_to_device(module, pname, device, value=hook.weights_map[pname])
    if hooks:
        remove_hook_from_module(layer, recurse=True)
    layer.to(device)
    try:
        yield layer
    finally:
        if not modified:
            for name, place in places.items():
                set_module_tensor_to_device(layer, name, place)
            for name, hook in hooks.items():
                add_hook_to_module(layer.get_submodule(name), hook)
        elif offloaded:
            _offload_to_cpu(layer, home)
        else:
            layer.to(home)
            if hooks:
                add_hook_to_module(layer, AlignDevicesHook(execution_device=home))


def _offload_to_cpu(layer: nn.Module, execution: torch.device) -> None:
    """Keep `layer`'s weights in CPU memory and load them onto `execution` at each forward."""
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module
    from accelerate.utils import set_module_tensor_to_device

    add_hook_to_module(layer, AlignDevicesHook(execution_device=execution))
    for module in layer.modules():
        params = dict(module.named_parameters(recurse=False))
        if not params:
            continue
        weights = {name: p.detach().to("cpu") for name, p in params.items()}
        for name in params:
            set_module_tensor_to_device(module, name, "meta")
        add_hook_to_module(module, AlignDevicesHook(execution_device=execution, offload=True, weights_map=weights))
