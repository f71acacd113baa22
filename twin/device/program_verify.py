"""Program-and-verify (P&V) physics of the on-chip pulse generator, vectorised over devices.

One :class:`ProgramVerifySession` programs a set of devices towards target conductances.
Each :meth:`ProgramVerifySession.step` is one round: every still-active device gets one
pulse chosen from its last verify read (RESET when it read above the band, partial-SET when
below), then the pulsed devices are read (``verify_reads`` reads averaged, each one counted)
and those inside the band stop. The session does no timing: a SimPy process elsewhere calls
``step()`` once per round and turns the returned :class:`RoundOutcome` (pulse and read counts)
into a delay.

The pulse model is not published (docs/program-verify.md): a partial-SET adds
max(N(mean, std), 0) uS (``partial_set_step_mode = "adaptive"``: mean and std shrink with the gap
left at the last verify read), a RESET puts the device at max(N(mean, std), 0) uS. Its defaults
were calibrated so that the final spread from the RESET state reproduces aihwkit's
programming-noise fit sigma_prog(gT), the spread IBM measured after *their* iterative
P&V. The verify read uses the model's read noise of a freshly programmed device.

Drift during a session is neglected: a round takes microseconds, drift's reference time
t0 is 20 s. Both pulse spreads are multiplied by ``PCMParameters.prog_noise_scale``, the
model's programming-noise knob, so that ``prog_noise_scale = 0`` makes pulses exact.

Injected faults (``devices.faults``, :mod:`twin.device.faults`): a pulse may fail or act on a
stuck or dead device, and a verify read senses a stuck or dead device as such; the pulse is
counted either way. Without faults not one operation differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from twin.device.parameters import PulseParameters
from twin.device.model import DeviceModel

__all__ = ["PulseParameters", "RoundOutcome", "SessionResult", "ProgramVerifySession"]


@dataclass(frozen=True)
class RoundOutcome:
    """What one round did, for the caller's timing and energy accounting."""

    partial_set: int  # partial-SET pulses applied
    reset: int  # RESET pulses applied
    verify_devices: int  # device reads: verify_reads per verified device (round 1 without from_reset
    #                      also includes the single initial read of all)
    verify_rows: int  # (tile, sign, row) line passes of those reads: verify_reads per line verified
    active_after: int  # devices still being programmed


@dataclass(frozen=True)
class SessionResult:
    """Final per-device state of a session (tensors aligned with the session's index)."""

    converged: torch.Tensor
    pulses_per_device: torch.Tensor
    last_read: torch.Tensor  # NaN where a device was never read (level 0 RESET from reset)
    partial_set: int
    reset: int
    rounds: int
    failed_pulses: torch.Tensor | None = None  # per device, pulses that failed (injected faults); None: no faults


class ProgramVerifySession:
    """Program-and-verify of ``devices[index]`` towards ``g_target``.

    Convention for the first round: with ``from_reset`` every device gets a RESET (initial
    programming starts from the low state) and is then verified; without it the first
    round starts with a verify read of *all* devices at their drifted state, so devices
    already inside the band are never pulsed, and only then pulses the others. Either way
    the session is not ``done`` before its first ``step``. A target of 0 needs no verify:
    one RESET puts the device at its lowest state, so it stops right after it.
    """

    def __init__(self, devices: DeviceModel, index: torch.Tensor, g_target: torch.Tensor,
                 params: PulseParameters, generator: torch.Generator, rows: int, cols: int,
                 now_ns: int, from_reset: bool) -> None:
        if index.dim() != 1 or g_target.shape != index.shape:
            raise ValueError("index and g_target must be flat tensors of the same length")
        if rows < 1 or cols < 1:
            raise ValueError('"rows" and "cols" must be >= 1.')
        if bool((g_target < 0).any()):
            raise ValueError("g_target must be >= 0")
        if torch.unique(index).numel() != index.numel():
            raise ValueError("index must not repeat a device")
        self.devices = devices
        self.index = index.to(torch.long)
        self.g_target = g_target.to(torch.float32)
        self.params = params
        self.generator = generator
        self.rows, self.cols = rows, cols
        self.from_reset = from_reset
        self.start_ns = int(now_ns)
        n = self.index.numel()
        dev = self.g_target.device
        # Line id = (tile*2 + sign)*rows + row: one verify pass drives one such line.
        self._line = torch.div(self.index, cols, rounding_mode="floor")
        # Positions are visited in ascending order: with lines ascending too, the lines of any
        # subset are counted by their changes, cheaper than torch.unique in every round.
        self._lines_ascending = bool((self._line[1:] >= self._line[:-1]).all()) if n > 1 else True
        self._band = params.band(self.g_target)
        # True conductance the pulses act on; the firmware only ever sees last_read.
        self.g_true = (torch.zeros(n, dtype=torch.float32, device=dev) if from_reset
                       else devices.expected_conductance(now_ns, self.index).to(torch.float32))
        self.last_read = torch.full((n,), float("nan"), dtype=torch.float32, device=dev)
        self.pulses_per_device = torch.zeros(n, dtype=torch.int64, device=dev)
        self.converged = torch.zeros(n, dtype=torch.bool, device=dev)
        self._act = torch.arange(n, device=dev)  # positions still being programmed, ascending
        self.partial_set_total = 0
        self.reset_total = 0
        self.rounds = 0
        self._finished = False
        self.faults = getattr(devices, "faults", None)  # hard faults (twin.device.faults); None: none
        self.failed_pulses = None if self.faults is None else torch.zeros(n, dtype=torch.int64, device=dev)

    @property
    def done(self) -> bool:
        return self.rounds > 0 and self._act.numel() == 0

    def _rows(self, idx: torch.Tensor) -> int:
        """Distinct lines (tile, sign, row) among the devices at ascending positions ``idx``."""
        if not idx.numel():
            return 0
        lines = self._line[idx]
        if self._lines_ascending:
            return 1 + int((lines[1:] != lines[:-1]).sum())
        return int(torch.unique(lines).numel())

    def _prog_noise(self, n: int) -> torch.Tensor:
        return self.devices.pulse_noise(n, self.generator)

    def _partial_set_step(self, idx: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The conductance each partial-SET of ``idx`` adds, from its standard draws ``noise``.

        ``fixed``: max(N(mean, std), 0), the calibrated step. ``adaptive``: the mean is the gap
        the last verify read left, times the gain, clamped to [floor, full step]; the spread
        keeps the full step's relative spread (std * mean_adaptive / mean). Same draws either way.
        """
        p = self.params
        if p.partial_set_step_mode == "fixed":
            return (p.partial_set_step_mean_us + p.partial_set_step_std_us * noise).clamp(min=0.0)
        gap = self.g_target[idx] - self.last_read[idx]
        mean = (p.adaptive_step_gain * gap).clamp(min=p.adaptive_step_min_us, max=p.partial_set_step_mean_us)
        std = p.partial_set_step_std_us * (mean / p.partial_set_step_mean_us)
        return (mean + std * noise).clamp(min=0.0)

    def step(self, now_ns: int) -> RoundOutcome:
        """One round: pulse the active devices, verify the pulsed ones, retire the finished."""
        if self._finished:
            raise RuntimeError("session already finished")
        if self.done:
            raise RuntimeError("session is done; call finish()")
        p = self.params
        verify_devices = verify_rows = 0
        if self.rounds == 0 and not self.from_reset:
            # Initial read of every device at its real (drifted, aged) state and read noise.
            self.last_read = self.devices.read(now_ns, self.generator, self.index).to(torch.float32)
            verify_devices, verify_rows = self.index.numel(), self._rows(torch.arange(self.index.numel()))
            in_band = (self.last_read - self.g_target).abs() <= self._band
            # Level 0: anything reading at or below the band is as low as a RESET would put it.
            low_enough = (self.g_target == 0) & (self.last_read <= self._band)
            self.converged |= in_band | low_enough
            self._act = torch.nonzero(~(in_band | low_enough)).squeeze(1)

        # Work on the compact list of active devices: late rounds touch only a few.
        act = self._act
        target, band = self.g_target[act], self._band[act]
        if self.rounds == 0 and self.from_reset:
            is_reset = torch.ones_like(act, dtype=torch.bool)
        else:
            is_reset = (self.last_read[act] > target + band) | (target == 0)
        reset_idx, set_idx = act[is_reset], act[~is_reset]
        n_reset, n_set = int(reset_idx.numel()), int(set_idx.numel())
        before = None if self.faults is None else self.g_true[act].clone()
        # RESET lands at max(N(mean, std), 0), whatever the device held; partial-SET adds a step.
        r = self._prog_noise(n_reset)
        self.g_true[reset_idx] = (p.reset_g_mean_us + p.reset_g_std_us * r).clamp(min=0.0)
        s = self._prog_noise(n_set)
        self.g_true[set_idx] += self._partial_set_step(set_idx, s)
        if self.faults is not None:  # failed pulses, stuck devices, dead tiles: the pulse is spent, the device stays
            self.g_true[act], failed = self.faults.pulsed(now_ns, self.index[act], before, self.g_true[act])
            self.failed_pulses[act] += failed.to(torch.int64)
        self.pulses_per_device[act] += 1
        self.partial_set_total += n_set
        self.reset_total += n_reset

        # A RESET is final for level 0; everything else pulsed is read back, with the read
        # noise of a freshly programmed device (aihwkit's 1/f noise at age 0).
        level0 = target == 0
        self.converged[act[level0]] = True
        read_idx = act[~level0]
        still = read_idx  # what stays active after this round
        if read_idx.numel():
            reading = self.devices.verify_read(self.g_true[read_idx], self.generator, reads=p.verify_reads)
            if self.faults is not None:  # a stuck device or a dead tile is sensed as such
                reading = self.faults.sensed(now_ns, self.index[read_idx], reading)
            self.last_read[read_idx] = reading
            # Every one of the verify_reads back-to-back reads is a read: a pass per line, a sense per device.
            verify_devices += p.verify_reads * int(read_idx.numel())
            verify_rows += p.verify_reads * self._rows(read_idx)
            hit = (reading - self.g_target[read_idx]).abs() <= self._band[read_idx]
            self.converged[read_idx[hit]] = True
            # Out of budget: stop, not converged.
            left = read_idx[~hit]
            still = left[self.pulses_per_device[left] < p.max_iterations]
        self._act = still
        self.rounds += 1
        return RoundOutcome(partial_set=n_set, reset=n_reset, verify_devices=verify_devices,
                            verify_rows=verify_rows, active_after=int(still.numel()))

    def run(self, now_ns: int) -> SessionResult:
        """Convenience for tests and studies: step until done at one instant, then finish."""
        while not self.done:
            self.step(now_ns)
        return self.finish(now_ns)

    def finish(self, now_ns: int) -> SessionResult:
        """Commit pulsed devices to the DeviceArray (new G_prog, new nu, drift age 0)."""
        if self._finished:
            raise RuntimeError("session already finished")
        self._finished = True
        pulsed = self.pulses_per_device > 0
        idx = self.index[pulsed]
        if idx.numel():
            self.devices.commit(idx, self.g_true[pulsed], self.g_target[pulsed], now_ns, self.generator)
        return SessionResult(converged=self.converged.clone(), pulses_per_device=self.pulses_per_device.clone(),
                             last_read=self.last_read.clone(), partial_set=self.partial_set_total,
                             reset=self.reset_total, rounds=self.rounds,
                             failed_pulses=None if self.failed_pulses is None else self.failed_pulses.clone())
