"""Per-layer shapes of a network for the service model (twin.traffic.service, docs/service-model.md).

One forward pass of a zero input, with forward hooks, gives every crossbar layer (Conv2d, Linear)
its output positions (the MVMs it runs per inference) and counts the element operations the
digital unit does after it, up to the next crossbar layer:

- bias adds: ``out * positions`` if the layer has a bias (biases stay digital);
- ReLU: one per output element;
- MaxPool2d: ``kernel_h * kernel_w - 1`` comparisons per output element;
- LogSoftmax / Softmax: ~3 per element (exponent, running sum, subtract or divide; the one
  log per row is not counted);
- Flatten, Identity, Dropout: none (a reshape, or the identity at inference).

Any other module type is refused: its cost would otherwise be silently zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from twin.traffic.service import LayerShape

__all__ = ["layer_shapes", "SOFTMAX_OPS_PER_ELEMENT"]

SOFTMAX_OPS_PER_ELEMENT = 3
"""Element ops of (Log)Softmax per element: exponent, add to the row sum, subtract (log) or divide."""

_CROSSBAR = (nn.Conv2d, nn.Linear)
_FREE = (nn.Flatten, nn.Identity, nn.Dropout)
_CONTAINERS = (nn.Sequential,)


def _digital_ops(module: nn.Module, output: torch.Tensor) -> int:
    """Element ops of a non-crossbar module on one sample (the batch dimension is 1)."""
    if isinstance(module, _FREE):
        return 0
    if isinstance(module, nn.ReLU):
        return output.numel()
    if isinstance(module, nn.MaxPool2d):
        k = module.kernel_size
        window = k * k if isinstance(k, int) else math.prod(k)
        return output.numel() * (window - 1)
    if isinstance(module, (nn.LogSoftmax, nn.Softmax)):
        return SOFTMAX_OPS_PER_ELEMENT * output.numel()
    raise AssertionError(type(module))  # filtered out before the forward pass


def layer_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerShape]:
    """The crossbar layers of ``model`` in forward order, with their output positions and digital
    element ops per inference, from one forward pass of a zero input of shape ``(1, *input_shape)``.

    Raises ValueError for module types whose cost is unknown, for element ops before the first
    crossbar layer, and for a crossbar layer called more than once or not at all.
    """
    if not input_shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in input_shape):
        raise ValueError(f'"input_shape" must be a tuple of positive integers, got {input_shape!r}')
    known = _CROSSBAR + _FREE + (nn.ReLU, nn.MaxPool2d, nn.LogSoftmax, nn.Softmax)
    leaves, unknown = [], []
    for name, module in model.named_modules():
        if isinstance(module, _CONTAINERS) and type(module) in _CONTAINERS:
            continue
        if isinstance(module, known) and not any(True for _ in module.children()):
            leaves.append((name or type(module).__name__, module))
        else:
            unknown.append(f"{name or '<root>'} ({type(module).__name__})")
    if unknown:
        raise ValueError(f"layer_shapes: no element-op count for module(s) {', '.join(unknown)}; "
                         "known: " + ", ".join(sorted(t.__name__ for t in known)))

    calls: list[tuple[str, nn.Module, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda mod, inp, out, name=name: calls.append((name, mod, out)))
               for name, m in leaves]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # Dropout in training mode would draw from the global RNG
    try:
        with torch.no_grad():
            param = next(model.parameters(), None)
            x = torch.zeros((1, *input_shape), dtype=param.dtype if param is not None else torch.float32,
                            device=param.device if param is not None else "cpu")
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training

    shapes: list[dict] = []
    for name, module, out in calls:
        if not isinstance(out, torch.Tensor) or out.shape[0] != 1:
            raise ValueError(f"layer_shapes: module {name!r} did not return one sample's tensor")
        if isinstance(module, _CROSSBAR):
            if any(s["name"] == name for s in shapes):
                raise ValueError(f"layer_shapes: crossbar layer {name!r} is called more than once")
            n_out = module.weight.shape[0]
            fan_in = math.prod(module.weight.shape[1:])
            if isinstance(module, nn.Conv2d):
                positions = math.prod(out.shape[2:])
            else:
                positions = out.numel() // n_out
            bias = n_out * positions if module.bias is not None else 0
            shapes.append({"name": name, "out": n_out, "fan_in": fan_in, "positions": positions,
                           "digital_ops": bias})
        else:
            ops = _digital_ops(module, out)
            if ops and not shapes:
                raise ValueError(f"layer_shapes: module {name!r} does element ops before the first crossbar layer")
            if shapes:
                shapes[-1]["digital_ops"] += ops
    called = {s["name"] for s in shapes}
    missing = [name for name, m in leaves if isinstance(m, _CROSSBAR) and name not in called]
    if missing:
        raise ValueError(f"layer_shapes: crossbar layer(s) {', '.join(missing)} not called in the forward pass")
    return [LayerShape(**s) for s in shapes]
