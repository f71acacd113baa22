"""PCM device physics: IBM's statistical model, per device, with explicit seeded generators.

The formulas are those of aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019;
Joshi et al., Nat. Commun. 2020), which is the reference this module is tested against
(``tests/test_pcm.py``). aihwkit's functions take one scalar inference time and draw from
torch's global random state; here every device carries its own drift age and every draw
comes from a ``torch.Generator`` the caller owns, so runs are reproducible and devices
programmed at different times drift independently.

State lives in :class:`DeviceArray` as flat torch tensors (one entry per device), so the
same code runs on the CPU or, later, on a cuda device.

Read noise (``PCMParameters.read_noise_model``): ``"correlated"`` (default) makes each device's
1/f noise a process in time (:mod:`twin.device.read_noise`) whose marginal at any single read is
aihwkit's; ``"independent"`` draws it afresh on every read, aihwkit's snapshot (docs/physics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from twin.device.faults import DeviceFaults
from twin.device.parameters import PCMParameters
from twin.device.read_noise import CorrelatedReadNoise
from twin.units import SECOND

__all__ = ["PCMParameters", "PCMStatistics", "DeviceArray"]

_ZERO_CLIP = 1e-7  # aihwkit's floor on g/g_max inside the log of the drift-exponent fit
NO_SAMPLE = torch.iinfo(torch.int64).min
"""``DeviceArray.noise_t_ns`` of a device read by no committed read since its programming."""
_CHUNK = 1 << 16  # devices per block of the correlated read (bounds the (n, J) temporaries)


class PCMStatistics:
    """The model's formulas, vectorised over devices; conductances in uS, ages in seconds."""

    def __init__(self, params: PCMParameters | None = None) -> None:
        self.params = params or PCMParameters()
        self.read_noise = (CorrelatedReadNoise(self.params.t_read_s)
                           if self.params.read_noise_model == "correlated" else None)

    def programming_sigma(self, g_target: torch.Tensor) -> torch.Tensor:
        """sigma_prog(gT) = c0 + c1 x + c2 x^2 with x = gT/g_max, floored at 0 (uS)."""
        p = self.params
        x = g_target / p.g_max_us
        c0, c1, c2 = p.prog_coeff
        sigma = c0 + c1 * x + c2 * x * x
        sigma = sigma * (p.g_max_us / p.prog_coeff_g_max_reference_us)
        return sigma.clamp(min=0.0)

    def program(self, g_target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Conductance after iterative program-and-verify: target plus Gaussian noise, >= 0."""
        noise = torch.randn(g_target.shape, generator=generator, dtype=g_target.dtype, device=g_target.device)
        return (g_target + self.params.prog_noise_scale * self.programming_sigma(g_target) * noise).clamp(min=0.0)

    def drift_exponent_moments(self, g_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and spread of nu before folding (fits to IBM's 1M-device array data)."""
        g_rel = (g_target / self.params.g_max_us).abs().clamp(min=_ZERO_CLIP)
        log_g = torch.log(g_rel)
        mu = (-0.0155 * log_g + 0.0244).clamp(min=0.049, max=0.1)
        sigma = (-0.0125 * log_g - 0.0059).clamp(min=0.008, max=0.045)
        return mu, sigma

    def drift_exponents(self, g_target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """nu = drift_scale * |mu + sigma N(0,1)| (a folded normal, as aihwkit)."""
        mu, sigma = self.drift_exponent_moments(g_target)
        noise = torch.randn(g_target.shape, generator=generator, dtype=g_target.dtype, device=g_target.device)
        return (mu + sigma * noise).abs() * self.params.drift_scale

    def drift_log_ratio(self, age_s: torch.Tensor) -> torch.Tensor:
        """ln((age + t0) / t0), computed in float64 so that long ages keep their precision."""
        return torch.log1p(age_s.to(torch.float64) / self.params.t0_s)

    def drift_factor(self, nu: torch.Tensor, age_s: torch.Tensor) -> torch.Tensor:
        """G(age)/G_prog = ((age + t0)/t0)^(-nu); 1 at age 0 (aihwkit's form: no jump)."""
        return torch.exp(-nu * self.drift_log_ratio(age_s).to(nu.dtype))

    def read_noise_q(self, g_prog: torch.Tensor) -> torch.Tensor:
        """Qs = min(0.0088 / max(|G_prog|/g_max, 1e-3)^0.65, 0.2)."""
        g_rel = (g_prog.abs() / self.params.g_max_us) ** 0.65
        return (0.0088 / g_rel.clamp(min=1e-3)).clamp(max=0.2)

    def read_noise_log_term(self, age_s: torch.Tensor) -> torch.Tensor:
        """L = ln((age + t0 + t_read) / (2 t_read)), clamped at 0 (float64).

        aihwkit evaluates the log at t = t_inference + t0, so a read right after
        programming already carries the noise accumulated over t0; kept identical.
        """
        p = self.params
        t = age_s.to(torch.float64) + p.t0_s
        return torch.log((t + p.t_read_s) / (2 * p.t_read_s)).clamp(min=0.0)

    def read_noise_sigma(self, g_prog: torch.Tensor, age_s: torch.Tensor) -> torch.Tensor:
        """Relative 1/f read-noise std: Qs sqrt(ln((age + t0 + t_read) / (2 t_read)))."""
        return self.read_noise_q(g_prog) * torch.sqrt(self.read_noise_log_term(age_s)).to(g_prog.dtype)

    def read(self, g_prog: torch.Tensor, nu: torch.Tensor, age_s: torch.Tensor,
             generator: torch.Generator, noise: torch.Tensor | None = None) -> torch.Tensor:
        """One read of drifted devices: G_prog * drift + |G_drift| * sigma_read * z, >= 0.

        ``z``: ``noise`` (standard normal at any single time, e.g. the correlated process of
        :class:`DeviceArray`) or, when None, drawn afresh: a snapshot at that age, as aihwkit.
        """
        g_drift = g_prog * self.drift_factor(nu, age_s)
        if noise is None:
            noise = torch.randn(g_prog.shape, generator=generator, dtype=g_prog.dtype, device=g_prog.device)
        sigma = self.params.read_noise_scale * self.read_noise_sigma(g_prog, age_s)
        return (g_drift + g_drift.abs() * sigma * noise).clamp(min=0.0)


@dataclass
class DeviceArray:
    """All devices of a chip as flat tensors.

    ``target_level``: the level k each device should hold (conductance k * g_max / K);
    ``g_prog``: conductance right after its last programming (uS);
    ``nu``: drift exponent drawn at that programming;
    ``t_prog_ns``: simulation time (integer ns) of that programming, so the drift age of a
    device is ``now - t_prog_ns``, exact to the nanosecond over any deployment. Keeping an
    age rather than a time lets temperature accelerate ageing per tile later without
    changing the closed form;
    ``noise_components``: (size, J) float32, the J 1/f components of the read noise at the last
    committed read (J = 0 with ``read_noise_model="independent"``);
    ``noise_t_ns``: time of that read, :data:`NO_SAMPLE` where none since programming.
    :attr:`STATE_FIELDS` names every per-device state tensor (what a snapshot saves).
    """

    STATE_FIELDS: ClassVar[tuple[str, ...]] = ("g_prog", "nu", "t_prog_ns", "noise_components", "noise_t_ns")

    levels: int
    statistics: PCMStatistics
    target_level: torch.Tensor | None  # None on a chip: the original levels live off-chip
    g_prog: torch.Tensor = field(init=False)
    nu: torch.Tensor = field(init=False)
    t_prog_ns: torch.Tensor = field(init=False)
    noise_components: torch.Tensor = field(init=False)
    noise_t_ns: torch.Tensor = field(init=False)
    faults: DeviceFaults | None = field(default=None, init=False)  # hard faults overlaid (docs/faults.md)
    _verify_scale: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.levels < 1:
            raise ValueError('"levels" must be >= 1.')
        if self.target_level.dim() != 1:
            raise ValueError("target_level must be a flat tensor of device levels")
        if bool((self.target_level < 0).any()) or bool((self.target_level > self.levels).any()):
            raise ValueError(f"target levels must lie in 0..{self.levels}")
        self.target_level = self.target_level.to(torch.int16)
        device = self.target_level.device
        n = self.target_level.numel()
        self.g_prog = torch.zeros(n, dtype=torch.float32, device=device)
        self.nu = torch.zeros(n, dtype=torch.float32, device=device)
        self.t_prog_ns = torch.zeros(n, dtype=torch.int64, device=device)
        model = self.statistics.read_noise
        self.noise_components = torch.zeros((n, 0 if model is None else model.components), dtype=torch.float32,
                                            device=device)
        self.noise_t_ns = torch.full((n,), NO_SAMPLE, dtype=torch.int64, device=device)

    @classmethod
    def unprogrammed(cls, levels: int, statistics: PCMStatistics, size: int,
                     device: torch.device | str = "cpu") -> DeviceArray:
        """``size`` devices that hold no record of what they should be (a chip's devices), their
        state on the torch ``device`` (``simulation.device``: cpu or cuda)."""
        array = cls(levels, statistics, torch.zeros(size, dtype=torch.int16, device=device))
        array.target_level = None
        return array

    def head_copy(self, n: int) -> DeviceArray:
        """A copy of the first ``n`` devices' state (and their hard faults) that evolves apart from
        this array: the same programming, left alone from now on (twin.chip.accuracy)."""
        copy = DeviceArray.unprogrammed(self.levels, self.statistics, n, self.device)
        for name in self.STATE_FIELDS:
            setattr(copy, name, getattr(self, name)[:n].clone())
        if self.faults is not None:
            f = self.faults
            copy.faults = DeviceFaults(f.stuck[:n], f.stuck_us[:n], f.dead_from_ns[:n], 0.0, f.generator)
        return copy

    @property
    def device(self) -> torch.device:
        """Where the state lives; indices and values from elsewhere are moved here."""
        return self.g_prog.device

    def _here(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        return tensor if tensor is None or tensor.device == self.g_prog.device else tensor.to(self.g_prog.device)

    @property
    def size(self) -> int:
        return self.g_prog.numel()

    @property
    def g_max_us(self) -> float:
        return self.statistics.params.g_max_us

    def level_conductance(self, level: torch.Tensor) -> torch.Tensor:
        """Target conductance of level k: k * g_max / K (uS)."""
        return level.to(torch.float32) * (self.g_max_us / self.levels)

    def target_conductance(self, index: torch.Tensor | None = None) -> torch.Tensor:
        if self.target_level is None:
            raise ValueError("these devices hold no target levels (a chip's targets live off-chip)")
        levels = self.target_level if index is None else self.target_level[index]
        return self.level_conductance(levels)

    def program(self, now_ns: int, generator: torch.Generator, index: torch.Tensor | None = None,
                g_target: torch.Tensor | None = None) -> None:
        """(Re)program devices to their targets (or to ``g_target``): new G_prog, new nu, age 0."""
        index, g_target = self._here(index), self._here(g_target)
        sel = slice(None) if index is None else index
        target = self.target_conductance(index) if g_target is None else g_target.to(torch.float32)
        self.g_prog[sel] = self.statistics.program(target, generator)
        self.nu[sel] = self.statistics.drift_exponents(target, generator)
        self.t_prog_ns[sel] = int(now_ns)
        self._restart_noise(sel)

    def _restart_noise(self, sel) -> None:
        """Programming restarts the 1/f process: no sample since; the next read draws the marginal."""
        self.noise_components[sel] = 0.0
        self.noise_t_ns[sel] = NO_SAMPLE

    def age_ns(self, now_ns: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """Exact integer drift age of each device at ``now_ns``."""
        t_prog = self.t_prog_ns if index is None else self.t_prog_ns[index]
        age = int(now_ns) - t_prog
        if bool((age < 0).any()):
            raise ValueError("cannot read a device before it was programmed")
        return age

    def age_s(self, now_ns: int, index: torch.Tensor | None = None) -> torch.Tensor:
        age = self.age_ns(now_ns, index)
        # Split into whole seconds and the remainder so float64 keeps ns detail over decades.
        whole = torch.div(age, SECOND, rounding_mode="floor")
        return whole.to(torch.float64) + (age - whole * SECOND).to(torch.float64) / SECOND

    def read(self, now_ns: int, generator: torch.Generator, index: torch.Tensor | None = None,
             commit: bool = True) -> torch.Tensor:
        """Drifted, noisy conductances (uS) at ``now_ns`` of all devices or of ``index``.

        ``commit=True``: the read's noise becomes the devices' history (the chip's probe and
        program-and-verify). ``commit=False``: a draw from the noise's distribution given the
        committed history, state untouched (an observer; several such draws at one instant are
        independent given the history). A read before a device's last committed read raises
        ValueError; one at the same nanosecond is taken one ``t_read`` later (a read cannot
        repeat faster than its own pulse).
        """
        index = self._here(index)
        g_prog = self.g_prog if index is None else self.g_prog[index]
        nu = self.nu if index is None else self.nu[index]
        age_s = self.age_s(now_ns, index)
        noise = self._read_noise(int(now_ns), age_s, generator, index, commit)
        values = self.statistics.read(g_prog, nu, age_s, generator, noise)
        return values if self.faults is None else self.faults.sensed(now_ns, index, values)

    def _read_noise(self, now_ns: int, age_s: torch.Tensor, generator: torch.Generator,
                    index: torch.Tensor | None, commit: bool) -> torch.Tensor | None:
        """The standardised correlated noise of the read (None: independent, drawn by the caller)."""
        if index is not None and index.dtype != torch.long:  # a mask or int32 indices: positions
            index = torch.nonzero(index).squeeze(1) if index.dtype == torch.bool else index.long()
        last = self.noise_t_ns if index is None else self.noise_t_ns[index]
        fresh = last == NO_SAMPLE
        dt_ns = now_ns - torch.where(fresh, now_ns, last)  # no wrap-around from NO_SAMPLE
        if bool((dt_ns < 0).any()):
            raise ValueError("cannot read a device before its last committed read (its noise is a process in time)")
        sel = slice(None) if index is None else index
        model = self.statistics.read_noise
        if model is None:
            if commit:
                self.noise_t_ns[sel] = now_ns
            return None
        p = self.statistics.params
        # A read at the same ns as the last committed one is taken t_read later: the components step
        # by t_read; L/V stays at the nominal time (off by t_read / t < 1e-8, relative).
        dt_s = torch.where(dt_ns == 0, p.t_read, dt_ns).to(torch.float64) / SECOND
        t_s = age_s + p.t0_s
        n = t_s.numel()
        z = torch.empty(n, dtype=torch.float32, device=t_s.device)
        state = self.noise_components
        for start in range(0, n, _CHUNK):
            part = slice(start, min(start + _CHUNK, n))
            rows = None if index is None else index[part]
            y = state[part] if rows is None else state.index_select(0, rows)
            if not commit:  # nothing to keep: one normal per device (the law of step's z given y)
                z[part] = model.conditional(y, t_s[part], dt_s[part], fresh[part], generator)
                continue
            y, z[part] = model.step(y, t_s[part], dt_s[part], fresh[part], generator)
            if rows is None:
                state[part] = y
            else:
                state.index_copy_(0, rows, y)
        if commit:
            self.noise_t_ns[sel] = now_ns
        return z

    def expected_conductance(self, now_ns: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """Noise-free drifted conductance (for diagnostics; the firmware never sees this)."""
        index = self._here(index)
        g_prog = self.g_prog if index is None else self.g_prog[index]
        nu = self.nu if index is None else self.nu[index]
        return g_prog * self.statistics.drift_factor(nu, self.age_s(now_ns, index))

    # --- the pulse response (program-and-verify, twin.device.program_verify) -----------------
    def pulse_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Standard normal draws for ``n`` pulses, scaled by the programming-noise knob."""
        noise = torch.randn(n, generator=generator, dtype=torch.float32, device=self.g_prog.device)
        return noise * self.statistics.params.prog_noise_scale

    def verify_read(self, g: torch.Tensor, generator: torch.Generator, reads: int = 1) -> torch.Tensor:
        """A verify read right after a pulse left the device at ``g``: no drift, the read noise of
        a freshly programmed device (age 0: the pulse restarts the 1/f process). ``reads`` > 1:
        the mean of that many back-to-back reads t_read apart (correlated: averaging removes only
        the fast components; independent: each read a fresh draw)."""
        if reads < 1:
            raise ValueError('"reads" must be >= 1')
        stats, model = self.statistics, self.statistics.read_noise
        if reads == 1:  # one read of a fresh process keeps nothing: its marginal is the snapshot's
            zeros = torch.zeros_like(g)
            return stats.read(g, zeros, zeros, generator)
        p = stats.params
        if model is None:
            spread = torch.randn((g.numel(), reads), generator=generator, dtype=torch.float32, device=g.device)
            spread = spread * math.sqrt(stats.read_noise_log_term(torch.zeros(1)).item())  # age 0, Qs apart
        else:
            spread = model.burst(g.numel(), p.t0_s, reads, generator)
        g = g.to(torch.float32)
        relative = (p.read_noise_scale * stats.read_noise_q(g)).unsqueeze(1) * spread
        return (g.unsqueeze(1) + g.abs().unsqueeze(1) * relative).clamp(min=0.0).mean(1)

    def verify_noise_relative(self, g: np.ndarray) -> np.ndarray:
        """Relative std of one verify read of devices a pulse just left at ``g`` >= 0 (numpy
        float32, the one-pass kernel twin.device.pv_kernel): read_noise_scale Qs(g) sqrt(L(age 0)),
        the marginal :meth:`verify_read` draws with ``reads = 1``."""
        stats = self.statistics
        if self._verify_scale is None:  # a constant of the model: computed once
            log_term = stats.read_noise_log_term(torch.zeros(1)).item()
            self._verify_scale = stats.params.read_noise_scale * math.sqrt(log_term)
        scale = self._verify_scale
        rel = np.multiply(g, np.float32(1.0 / stats.params.g_max_us))
        np.power(rel, np.float32(0.65), out=rel)
        np.maximum(rel, np.float32(1e-3), out=rel)
        np.divide(np.float32(0.0088 * scale), rel, out=rel)
        return np.minimum(rel, np.float32(0.2 * scale), out=rel)

    def commit(self, index: torch.Tensor, g: torch.Tensor, g_target: torch.Tensor, now_ns: int,
               generator: torch.Generator) -> None:
        """End of programming: new G_prog, a new drift exponent for the target, drift age 0."""
        index, g, g_target = self._here(index), self._here(g), self._here(g_target)
        self.g_prog[index] = g.to(self.g_prog.dtype)
        self.nu[index] = self.statistics.drift_exponents(g_target, generator).to(self.nu.dtype)
        self.t_prog_ns[index] = int(now_ns)
        self._restart_noise(index)

