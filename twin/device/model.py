"""What the chip needs of a device technology: the :class:`DeviceModel` protocol.

PCM (``twin.device.pcm.DeviceArray`` on IBM's statistics) is one implementation; a second
technology (RRAM, a PCM with temperature-driven drift) is a new module implementing these
methods, picked in ``twin.scenario.build``: nothing in the chip, the probe or program-and-verify
changes. All conductances are uS, all times integer nanoseconds, every draw from the caller's
generator.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import torch

from twin.device.faults import DeviceFaults

__all__ = ["DeviceModel"]


@runtime_checkable
class DeviceModel(Protocol):
    levels: int  # K: level k sits at k * g_max / K
    STATE_FIELDS: ClassVar[tuple[str, ...]]  # every per-device state tensor (what a snapshot saves)
    faults: DeviceFaults | None  # hard faults overlaid on reads and pulses (twin.device.faults); None: none

    @property
    def size(self) -> int: ...

    @property
    def g_max_us(self) -> float: ...

    def level_conductance(self, level: torch.Tensor) -> torch.Tensor:
        """Nominal conductance of each level."""

    def read(self, now_ns: int, generator: torch.Generator, index: torch.Tensor | None = None,
             commit: bool = True) -> torch.Tensor:
        """Read at a time: the conductance the periphery senses now (drift and read noise; ``faults``
        applied).
        ``commit=False``: an observer's read, drawn given the devices' history, leaving it untouched."""

    def expected_conductance(self, now_ns: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """The noise-free conductance now (what a pulse acts on)."""

    def pulse_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The pulse step's randomness: ``n`` standard draws scaled by the device's programming noise."""

    def verify_read(self, g: torch.Tensor, generator: torch.Generator, reads: int = 1) -> torch.Tensor:
        """A read right after a pulse left the device at ``g``; with ``reads`` > 1 the mean of
        that many back-to-back reads (their noise is correlated: averaging helps little)."""

    def commit(self, index: torch.Tensor, g: torch.Tensor, g_target: torch.Tensor, now_ns: int,
               generator: torch.Generator) -> None:
        """Programming of ``index`` ended at ``g`` (towards ``g_target``): the device state from now on."""
