"""Hard device faults overlaid on a device array (docs/faults.md): stuck devices, devices of a dead
tile, and pulses that fail.

A :class:`DeviceFaults` is attached to a ``DeviceArray`` as ``devices.faults`` (None: no faults, and
not one draw or operation more than without this module). It changes what is sensed and what a
pulse does, never the devices' statistics:

* a *stuck* device holds a fixed conductance (0: stuck low, g_max: stuck high) whatever is done to
  it: every read senses exactly that value (no drift, no read noise) and pulses leave it there;
* a device of a *dead* tile reads the ADC floor (exactly 0) from the tile's death on, and pulses
  leave its conductance where it was;
* a *failed* pulse is applied (and charged) but the device does not move, with probability
  ``pulse_failure_probability`` per pulse, drawn from this object's own generator.

Reads and pulses still draw their usual noise for every device, faulty or not, so a fault never
shifts the draws of another device within an operation.
"""

from __future__ import annotations

import torch

__all__ = ["DeviceFaults", "NEVER"]

NEVER = torch.iinfo(torch.int64).max
"""``dead_from_ns`` of a device whose tile never dies."""


class DeviceFaults:
    """Per-device hard faults of ``size`` devices.

    ``stuck``: bool per device; ``stuck_us``: the conductance a stuck device holds (ignored where not
    stuck); ``dead_from_ns``: when the device's tile dies (:data:`NEVER`: it does not);
    ``generator``: the stream pulse failures are drawn from (used only when the probability is > 0).
    """

    def __init__(self, stuck: torch.Tensor, stuck_us: torch.Tensor, dead_from_ns: torch.Tensor,
                 pulse_failure_probability: float, generator: torch.Generator) -> None:
        if not (stuck.shape == stuck_us.shape == dead_from_ns.shape) or stuck.dim() != 1:
            raise ValueError("stuck, stuck_us and dead_from_ns must be flat tensors of one length per device")
        if not 0.0 <= pulse_failure_probability <= 1.0:
            raise ValueError('"pulse_failure_probability" must be in [0, 1].')
        self.stuck = stuck.to(torch.bool)
        self.stuck_us = stuck_us.to(torch.float32)
        self.dead_from_ns = dead_from_ns.to(torch.int64)
        self.pulse_failure_probability = float(pulse_failure_probability)
        self.generator = generator
        self._any_stuck = bool(self.stuck.any())
        self._first_death_ns = int(self.dead_from_ns.min()) if self.dead_from_ns.numel() else NEVER

    @property
    def size(self) -> int:
        return self.stuck.numel()

    def _positions(self, index: torch.Tensor | None) -> torch.Tensor:
        if index is None:
            return torch.arange(self.size)
        if index.dtype == torch.bool:
            return torch.nonzero(index).squeeze(1)
        return index.to(torch.long)

    def dead(self, now_ns: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """Which devices (of ``index``) sit on a tile dead at ``now_ns``."""
        return self.dead_from_ns[self._positions(index)] <= int(now_ns)

    def sensed(self, now_ns: int, index: torch.Tensor | None, values: torch.Tensor) -> torch.Tensor:
        """What the periphery senses of devices ``index`` whose healthy reading would be ``values``."""
        if not self._any_stuck and int(now_ns) < self._first_death_ns:
            return values
        idx = self._positions(index)
        out = torch.where(self.stuck[idx], self.stuck_us[idx].to(values.dtype), values)
        return out.masked_fill(self.dead_from_ns[idx] <= int(now_ns), 0.0)  # a dead tile reads the ADC floor

    def pulsed(self, now_ns: int, index: torch.Tensor, before: torch.Tensor, after: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """One pulse on each of ``index``: a healthy device would go from ``before`` to ``after``.
        Returns the conductance each actually holds and which pulses failed (drawn per pulse)."""
        failed = torch.zeros(after.shape, dtype=torch.bool)
        if self.pulse_failure_probability > 0 and after.numel():
            failed = torch.rand(after.shape, generator=self.generator) < self.pulse_failure_probability
        g = torch.where(failed, before, after)
        idx = self._positions(index)
        g = torch.where(self.stuck[idx], self.stuck_us[idx].to(g.dtype), g)
        return torch.where(self.dead_from_ns[idx] <= int(now_ns), before, g), failed

    def state(self) -> dict:
        """What changes during a run (the placement is fixed at build): the generator."""
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
