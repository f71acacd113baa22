"""A whole program-and-verify session in one vectorised pass (the fast path of ``campaign`` mode).

The physics is :class:`~twin.device.program_verify.ProgramVerifySession`'s, round for round:
every active device gets one pulse per round (RESET when its last verify read was above the band
or its target is level 0, otherwise a partial-SET of max(N(mean, std), 0) uS), is read back with
the read noise of a freshly programmed device, and stops when the read falls inside the band or
the pulse budget is spent. What differs is the bookkeeping: the loop runs in numpy on compact
arrays of the still-active devices (about twenty small operations per round instead of the
session's torch calls, events and SimPy timeouts), draws its normals from its own stream in
another order, and derives the per-round counts the ledger needs (pulses of each kind, verify
device reads and verify line passes) at the end from when each device stopped. So the bytes differ
from the round-by-round session but not the statistics (tests/test_pv_kernel.py: residuals by a
two-sample KS test, the default scenario over 20 programmings against tests/fixtures/).

It covers the default pulse model: fixed partial-SET steps and one read per verify, with or
without injected faults (the devices' :class:`~twin.device.faults.DeviceFaults` act on every
round's pulses and reads, as in the round model; a tile's death is taken at the session's start). :func:`supports` says whether a session qualifies; the others run round
by round (``twin.chip.pulse_generator``), which is also the ``round`` and ``pulse``
granularities' path and the validation reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from twin.device.model import DeviceModel
from twin.device.parameters import PulseParameters
from twin.device.program_verify import SessionResult

__all__ = ["RoundCounts", "KernelOutcome", "supports", "program_verify"]

_FAILED = 4  # the state block's row of failed pulses per device, when faults are injected


@dataclass(frozen=True)
class RoundCounts:
    """Per round of a session (numpy int64 arrays, one entry per round): what the ledger charges."""

    partial_set: np.ndarray
    reset: np.ndarray
    verify_devices: np.ndarray
    verify_rows: np.ndarray

    @property
    def rounds(self) -> int:
        return int(self.partial_set.size)


def supports(devices: DeviceModel, params: PulseParameters) -> bool:
    """Whether the one-pass kernel reproduces this session's model (else: round by round)."""
    return (params.partial_set_step_mode == "fixed" and params.verify_reads == 1
            and hasattr(devices, "verify_noise_relative"))


@dataclass(frozen=True)
class KernelOutcome:
    """A session's result and per-round counts; :meth:`commit` writes the pulsed devices' new
    state once the session's time has passed (the caller's clock)."""

    result: SessionResult
    counts: RoundCounts
    index: torch.Tensor
    g_target: torch.Tensor
    g_final: np.ndarray  # true conductance each device was left at (float32, uS)

    def commit(self, devices: DeviceModel, now_ns: int, generator: torch.Generator) -> None:
        """New G_prog, a new drift exponent, drift age 0, for every pulsed device (as
        :meth:`ProgramVerifySession.finish`)."""
        pulsed = self.result.pulses_per_device > 0
        if bool(pulsed.any()):
            on = self.index.device
            devices.commit(self.index[pulsed.to(on)], torch.from_numpy(self.g_final[pulsed.numpy()]).to(on),
                           self.g_target[pulsed.to(self.g_target.device)], now_ns, generator)


def program_verify(devices: DeviceModel, index: torch.Tensor, g_target: torch.Tensor, params: PulseParameters,
                   rng: torch.Generator, generator: torch.Generator, cols: int, now_ns: int,
                   from_reset: bool) -> KernelOutcome:
    """Program-and-verify ``devices[index]`` towards ``g_target`` (uS), starting at ``now_ns``.

    ``rng`` (a cpu generator: the loop runs on the host) draws the pulses and verify reads;
    ``generator`` the initial read (it commits to the
    devices' noise history) and, in :meth:`KernelOutcome.commit`, the drift exponents. ``cols``:
    devices per line. Conventions as :class:`ProgramVerifySession` (from RESET every device's
    first pulse is a RESET; otherwise devices reading inside the band at the start are left alone).
    """
    if not supports(devices, params):
        raise ValueError("this session needs the round-by-round model (adaptive steps or several verify reads)")
    index = index.to(torch.long)
    n = int(index.numel())
    target = g_target.detach().to(torch.float32).cpu().numpy()
    band = params.band(target).astype(np.float32)
    level0 = target == 0
    line = index.cpu().numpy() // cols  # (tile, sign, row): one verify pass drives one line
    pulses = np.zeros(n, dtype=np.int64)
    converged = np.zeros(n, dtype=bool)
    last_read = np.full(n, np.nan, dtype=np.float32)
    g_final = np.zeros(n, dtype=np.float32)
    init_devices = init_rows = 0
    if from_reset:
        active = np.arange(n)
        read = np.full(n, np.inf, dtype=np.float32)  # the first pulse of every device is a RESET
        g = np.zeros(n, dtype=np.float32)
    else:
        # Initial read of every device at its real (drifted, aged) state and read noise.
        first = devices.read(now_ns, generator, index).detach().to(torch.float32).cpu().numpy()
        last_read[:] = first
        init_devices, init_rows = n, _lines(line)
        # Level 0: anything reading at or below the band is as low as a RESET would put it.
        ok = (np.abs(first - target) <= band) | (level0 & (first <= band))
        converged[ok] = True
        active = np.flatnonzero(~ok)
        read = first[active]
        g = devices.expected_conductance(now_ns, index[torch.from_numpy(active).to(index.device)]).detach().to(
            torch.float32).cpu().numpy()
    initial_read = last_read.copy()  # what a level-0 device reports: a RESET to 0 is not read back
    # Level 0 ends with its RESET: hi = -inf makes its pulse a RESET and an infinite band its
    # first "read" a hit (that read is drawn but neither kept nor charged).
    hi = np.where(level0, -np.inf, target + band).astype(np.float32)
    half = np.where(level0, np.inf, band).astype(np.float32)
    # The active devices' (g, target, hi, half[, failed pulses]) as one block: compacting it is one indexing.
    rows = [g, target[active], hi[active], half[active]]
    faults = getattr(devices, "faults", None)  # twin.device.faults, applied as in the round model
    if faults is not None:
        rows.append(np.zeros(active.size, np.float32))
    state = np.stack(rows)
    scale = devices.statistics.params.prog_noise_scale
    set_mean, set_std = np.float32(params.partial_set_step_mean_us), np.float32(params.partial_set_step_std_us * scale)
    reset_mean, reset_std = np.float32(params.reset_g_mean_us), np.float32(params.reset_g_std_us * scale)
    resets: list[int] = []
    retired: list[tuple[np.ndarray, np.ndarray, int, bool]] = []
    rounds = 0
    while active.size:
        g, tgt, hi_, half_ = state[:4]
        # In place where it can be: on chip64's full tiles every pass over the devices counts.
        z = torch.randn((2, active.size), generator=rng).numpy()  # torch's normals: twice numpy's speed
        is_reset = read > hi_
        step = np.where(is_reset, reset_std, set_std)
        step *= z[0]
        step += np.where(is_reset, reset_mean, set_mean)
        np.maximum(step, 0.0, out=step)
        after = np.where(is_reset, 0.0, g)  # RESET lands at the draw, a partial-SET adds it
        after += step
        if faults is not None:  # the pulse is spent either way; a tile's death is taken at the session's start
            where = index[torch.from_numpy(active)]
            held, failed = faults.pulsed(now_ns, where, torch.from_numpy(g.copy()), torch.from_numpy(after))
            after = held.numpy()
            state[_FAILED] += failed.numpy()
        state[0] = g = after
        read = devices.verify_noise_relative(g)
        read *= z[1]
        read += 1.0
        read *= g  # g (1 + sigma_rel z)
        np.maximum(read, 0.0, out=read)
        if faults is not None:  # a stuck device or a dead tile is sensed as such
            read = faults.sensed(now_ns, where, torch.from_numpy(read)).numpy()
        hit = np.subtract(read, tgt, out=z[0])
        hit = np.abs(hit, out=hit) <= half_
        resets.append(int(np.count_nonzero(is_reset)))
        rounds += 1
        if rounds >= params.max_iterations:  # every device still active has spent its budget
            retired.append((active[hit], np.vstack([state[:, hit], read[hit]]), rounds, True))
            retired.append((active[~hit], np.vstack([state[:, ~hit], read[~hit]]), rounds, False))
            break
        if hit.any():
            retired.append((active[hit], np.vstack([state[:, hit], read[hit]]), rounds, True))
            keep = ~hit
            active, state, read = active[keep], state[:, keep], read[keep]
    failed = None if faults is None else np.zeros(n, dtype=np.int64)
    for pos, end, n_pulses, ok in retired:  # end: the state rows, then the last read
        pulses[pos], g_final[pos], last_read[pos], converged[pos] = n_pulses, end[0], end[-1], ok
        if failed is not None:
            failed[pos] = end[_FAILED]
    reset_to_zero = level0 & (pulses > 0)
    last_read[reset_to_zero] = initial_read[reset_to_zero]
    counts = _round_counts(pulses, level0, line, np.asarray(resets, dtype=np.int64), init_devices, init_rows)
    result = SessionResult(converged=torch.from_numpy(converged), pulses_per_device=torch.from_numpy(pulses),
                           last_read=torch.from_numpy(last_read), partial_set=int(counts.partial_set.sum()),
                           reset=int(counts.reset.sum()), rounds=counts.rounds,
                           failed_pulses=None if failed is None else torch.from_numpy(failed))
    return KernelOutcome(result, counts, index, g_target, g_final)


def _lines(line: np.ndarray) -> int:
    return int(np.unique(line).size) if line.size else 0


def _round_counts(pulses: np.ndarray, level0: np.ndarray, line: np.ndarray, resets: np.ndarray,
                  init_devices: int, init_rows: int) -> RoundCounts:
    """Per-round counts from when each device stopped: every pulsed device is pulsed in rounds
    0 .. pulses - 1 and, unless its target is level 0, read back in each of them; a line is
    passed in a round when any device of it is read then."""
    rounds = max(int(pulses.max()) if pulses.size else 0, 1)  # a session takes at least one (read) round
    pulsed_in = _still_at(pulses, rounds)
    read_p = np.where(level0, 0, pulses)
    verify_devices = _still_at(read_p, rounds)
    _, line_of = np.unique(line, return_inverse=True)
    line_last = np.zeros(int(line_of.max()) + 1 if line.size else 0, dtype=np.int64)
    np.maximum.at(line_last, line_of, read_p)
    verify_rows = _still_at(line_last, rounds)
    reset = np.zeros(rounds, dtype=np.int64)
    reset[:resets.size] = resets
    verify_devices[0] += init_devices
    verify_rows[0] += init_rows
    return RoundCounts(partial_set=pulsed_in - reset, reset=reset, verify_devices=verify_devices,
                       verify_rows=verify_rows)


def _still_at(last: np.ndarray, rounds: int) -> np.ndarray:
    """For each round j < ``rounds``: how many entries of ``last`` exceed j."""
    ended = np.bincount(last, minlength=rounds + 1)[: rounds + 1]
    return (last.size - np.cumsum(ended))[:rounds].astype(np.int64)
