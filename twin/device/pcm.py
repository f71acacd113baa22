"""PCM device physics: IBM's statistical model, per device, with explicit seeded generators.

The formulas are those of aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019;
Joshi et al., Nat. Commun. 2020), which is the reference this module is tested against
(``tests/test_pcm.py``). aihwkit's functions take one scalar inference time and draw from
torch's global random state; here every device carries its own drift age and every draw
comes from a ``torch.Generator`` the caller owns, so runs are reproducible and devices
programmed at different times drift independently.

State lives in :class:`DeviceArray` as flat torch tensors (one entry per device), so the
same code runs on the CPU or, later, on a cuda device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from twin.device.parameters import PCMParameters
from twin.units import SECOND

__all__ = ["PCMParameters", "PCMStatistics", "DeviceArray"]

_ZERO_CLIP = 1e-7  # aihwkit's floor on g/g_max inside the log of the drift-exponent fit


class PCMStatistics:
    """The model's formulas, vectorised over devices; conductances in uS, ages in seconds."""

    def __init__(self, params: PCMParameters | None = None) -> None:
        self.params = params or PCMParameters()

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

    def read_noise_sigma(self, g_prog: torch.Tensor, age_s: torch.Tensor) -> torch.Tensor:
        """Relative 1/f read-noise std: Qs sqrt(ln((age + t0 + t_read) / (2 t_read))).

        aihwkit evaluates the log at t = t_inference + t0, so a read right after
        programming already carries the noise accumulated over t0; kept identical.
        """
        p = self.params
        t = age_s.to(torch.float64) + p.t0_s
        log_term = torch.log((t + p.t_read_s) / (2 * p.t_read_s)).clamp(min=0.0)
        return self.read_noise_q(g_prog) * torch.sqrt(log_term).to(g_prog.dtype)

    def read(self, g_prog: torch.Tensor, nu: torch.Tensor, age_s: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
        """One read of drifted devices: G_prog * drift + |G_drift| * sigma_read * N(0,1), >= 0.

        The 1/f noise is drawn afresh on every call: a snapshot at that age, as in aihwkit
        (see docs/physics.md for what this means for repeated reads).
        """
        g_drift = g_prog * self.drift_factor(nu, age_s)
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
    changing the closed form.
    """

    levels: int
    statistics: PCMStatistics
    target_level: torch.Tensor | None  # None on a chip: the original levels live off-chip
    g_prog: torch.Tensor = field(init=False)
    nu: torch.Tensor = field(init=False)
    t_prog_ns: torch.Tensor = field(init=False)

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

    @classmethod
    def unprogrammed(cls, levels: int, statistics: PCMStatistics, size: int) -> DeviceArray:
        """``size`` devices that hold no record of what they should be (a chip's devices)."""
        array = cls(levels, statistics, torch.zeros(size, dtype=torch.int16))
        array.target_level = None
        return array

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
        sel = slice(None) if index is None else index
        target = self.target_conductance(index) if g_target is None else g_target.to(torch.float32)
        self.g_prog[sel] = self.statistics.program(target, generator)
        self.nu[sel] = self.statistics.drift_exponents(target, generator)
        self.t_prog_ns[sel] = int(now_ns)

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

    def read(self, now_ns: int, generator: torch.Generator, index: torch.Tensor | None = None) -> torch.Tensor:
        """Drifted, noisy conductances (uS) at ``now_ns`` of all devices or of ``index``."""
        g_prog = self.g_prog if index is None else self.g_prog[index]
        nu = self.nu if index is None else self.nu[index]
        return self.statistics.read(g_prog, nu, self.age_s(now_ns, index), generator)

    def expected_conductance(self, now_ns: int, index: torch.Tensor | None = None) -> torch.Tensor:
        """Noise-free drifted conductance (for diagnostics; the firmware never sees this)."""
        g_prog = self.g_prog if index is None else self.g_prog[index]
        nu = self.nu if index is None else self.nu[index]
        return g_prog * self.statistics.drift_factor(nu, self.age_s(now_ns, index))

    # --- the pulse response (program-and-verify, twin.device.program_verify) -----------------
    def pulse_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Standard normal draws for ``n`` pulses, scaled by the programming-noise knob."""
        noise = torch.randn(n, generator=generator, dtype=torch.float32, device=self.g_prog.device)
        return noise * self.statistics.params.prog_noise_scale

    def verify_read(self, g: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A verify read right after a pulse: the read noise of a freshly programmed device."""
        zeros = torch.zeros_like(g)
        return self.statistics.read(g, zeros, zeros, generator)

    def commit(self, index: torch.Tensor, g: torch.Tensor, g_target: torch.Tensor, now_ns: int,
               generator: torch.Generator) -> None:
        """End of programming: new G_prog, a new drift exponent for the target, drift age 0."""
        self.g_prog[index] = g.to(self.g_prog.dtype)
        self.nu[index] = self.statistics.drift_exponents(g_target, generator).to(self.nu.dtype)
        self.t_prog_ns[index] = int(now_ns)

