"""Correlated 1/f read noise: a superposition of Ornstein-Uhlenbeck processes (docs/physics.md).

aihwkit gives the read noise of a PCM device as a snapshot: relative std
Qs sqrt(L(t)), L(t) = ln((t + t_read) / (2 t_read)), the 1/f noise accumulated since
programming, t = age + t0. Here the same marginal comes from a process in time, so that reads
close together share their noise. 1/f noise is a superposition of Lorentzians with
log-uniformly spaced time constants (McWhorter 1957; for PCM: Ielmini, Lacaita, Fugazza et al.;
Nardone et al. 2009): component j is an Ornstein-Uhlenbeck process Y_j with time constant tau_j
and stationary variance w_j = the log-spacing, started at 0 at t = 0 (t0 before programming,
aihwkit's convention), so Var Y_j(t) = w_j (1 - exp(-2 t / tau_j)) and
V(t) = sum_j Var Y_j(t) ~ ln(t / t_read) + const. The standardised noise
z(t) = sum_j Y_j(t) / sqrt(V(t)) is N(0, 1) at every single time, whatever was read before;
the device model multiplies it by aihwkit's Qs sqrt(L(t)), so each marginal is aihwkit's exactly.

Time constants: 2 t_read (the fastest the read pulse sees) to :data:`TAU_MAX_S` = 1000 years,
one per decade (J = 18 at t_read = 250 ns). Times come in as float64 seconds (from exact int64
ns); coefficients shared by a run of devices are computed in float64, per-device ones in float32
(relative error ~1e-7); the components are float32. Pure torch; every draw from the caller's
generator.
"""

from __future__ import annotations

import math

import torch

from twin.units import SECOND, YEAR

__all__ = ["TAU_MAX_S", "COMPONENTS_PER_DECADE", "CorrelatedReadNoise"]

TAU_MAX_S = 1000 * YEAR / SECOND
"""Slowest time constant: 5x the longest deployment (twin.scenario.schema.MAX_DURATION, 200 y),
so the slowest component is still far from saturated at the end of any run."""
COMPONENTS_PER_DECADE = 1.0
"""One Lorentzian per decade: f S(f) of the sum ripples by +-5.5% around flat, V(t) by ~3%
(docs/physics.md)."""


class CorrelatedReadNoise:
    """J OU components with log-spaced time constants from 2 t_read to ``tau_max_s``.

    ``tau_s`` (J,) float64; ``weight``: the natural-log spacing, every component's w_j.
    Times are seconds of effective time t = age + t0 (float64 tensors or floats).
    """

    def __init__(self, t_read_s: float, tau_max_s: float = TAU_MAX_S,
                 per_decade: float = COMPONENTS_PER_DECADE) -> None:
        tau_min = 2.0 * t_read_s
        if not (t_read_s > 0 and tau_max_s > tau_min and per_decade > 0):
            raise ValueError("need t_read > 0, tau_max > 2 t_read and per_decade > 0")
        self.t_read_s = float(t_read_s)
        self.components = max(2, math.ceil(math.log10(tau_max_s / tau_min) * per_decade - 1e-9) + 1)
        log_tau = torch.linspace(math.log(tau_min), math.log(tau_max_s), self.components, dtype=torch.float64)
        self.tau_s = torch.exp(log_tau)
        self.weight = (math.log(tau_max_s) - math.log(tau_min)) / (self.components - 1)
        self._bursts: dict[tuple[float, int], torch.Tensor] = {}

    # --- analytic ---------------------------------------------------------------------------
    def log_term(self, t_s) -> torch.Tensor:
        """aihwkit's L(t) = ln((t + t_read) / (2 t_read)), clamped at 0: the variance of z's scale."""
        t = torch.as_tensor(t_s, dtype=torch.float64)
        return torch.log((t + self.t_read_s) / (2 * self.t_read_s)).clamp(min=0.0)

    def variance(self, t_s) -> torch.Tensor:
        """V(t) = sum_j w_j (1 - exp(-2 t / tau_j)): the variance of sum_j Y_j(t)."""
        t = torch.as_tensor(t_s, dtype=torch.float64)
        return self.weight * (-torch.expm1(-2.0 * t.unsqueeze(-1) / self.tau_s)).sum(-1)

    def covariance(self, t1_s, t2_s) -> torch.Tensor:
        """Cov of the normalised noise X(t) = sqrt(L(t)/V(t)) sum_j Y_j(t) at two times.

        X is the relative read noise for Qs * read_noise_scale = 1 (Var X(t) = L(t), aihwkit's);
        for t1 <= t2, Cov(Y_j(t1), Y_j(t2)) = w_j exp(-(t2 - t1)/tau_j) (1 - exp(-2 t1/tau_j)).
        """
        t1 = torch.as_tensor(t1_s, dtype=torch.float64)
        t2 = torch.as_tensor(t2_s, dtype=torch.float64)
        lo, hi = torch.minimum(t1, t2), torch.maximum(t1, t2)
        shared = self.weight * (torch.exp(-(hi - lo).unsqueeze(-1) / self.tau_s)
                                * -torch.expm1(-2.0 * lo.unsqueeze(-1) / self.tau_s)).sum(-1)
        return shared * torch.sqrt(self._scale2(t1) * self._scale2(t2))

    def correlation(self, t1_s, t2_s) -> torch.Tensor:
        """Correlation of the read noise at two times (0 where either has no noise)."""
        denominator = torch.sqrt(self.log_term(t1_s) * self.log_term(t2_s))
        cov = self.covariance(t1_s, t2_s)
        return torch.where(denominator > 0, cov / denominator.clamp(min=1e-300), torch.zeros_like(cov))

    def mean_variance(self, t_s: float, reads: int, spacing_s: float | None = None) -> float:
        """Var of the mean of ``reads`` reads at t, t + s, ... (s = t_read unless given)."""
        times = t_s + (self.t_read_s if spacing_s is None else spacing_s) * torch.arange(reads, dtype=torch.float64)
        return self.covariance(times.unsqueeze(1), times.unsqueeze(0)).mean().item()

    def _scale2(self, t: torch.Tensor) -> torch.Tensor:
        v = self.variance(t)
        return torch.where(v > 0, self.log_term(t) / v.clamp(min=1e-300), torch.zeros_like(v))

    # --- sampling ---------------------------------------------------------------------------
    def step(self, y: torch.Tensor, t_s: torch.Tensor, dt_s: torch.Tensor, fresh: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance components ``y`` (n, J) float32 by ``dt_s`` to effective time ``t_s`` (n,) float64.

        Where ``fresh`` the components are drawn from their marginal at ``t_s`` (no sample since
        programming; ``y`` and ``dt_s`` ignored there). Returns the new components (float32) and
        the standardised noise z = sum_j Y_j / sqrt(V(t)) (float32, N(0, 1) at any single time).
        """
        keep, std, inv_sd = self._device_coefficients(t_s, dt_s, fresh)
        noise = torch.randn((y.shape[0], self.components), generator=generator, dtype=torch.float32, device=y.device)
        y_new = torch.addcmul(keep * y, std, noise)
        return y_new, y_new.sum(1) * inv_sd

    def conditional(self, y: torch.Tensor, t_s: torch.Tensor, dt_s: torch.Tensor, fresh: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
        """The standardised noise z of a read that is not kept (an observer's), given the components
        ``y`` of the last committed read: the same law as :meth:`step`'s z, but z given y is one
        Gaussian (mean sum_j keep_j y_j, variance sum_j std_j^2, times 1/V), so one normal per
        device is drawn instead of J, and nothing is returned to store."""
        noise = torch.randn(y.shape[0], generator=generator, dtype=torch.float32, device=y.device)
        if bool(fresh.all()):  # nothing read since programming: the marginal, N(0, 1)
            return noise
        keep, std, inv_sd = self._device_coefficients(t_s, dt_s, fresh)
        mean = (keep * y).sum(1)
        return torch.addcmul(mean, std.square().sum(1).sqrt(), noise) * inv_sd

    def _device_coefficients(self, t_s: torch.Tensor, dt_s: torch.Tensor, fresh: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`_coefficients` for every device. Devices next to each other usually share
        (t, dt) (a tile programmed and read together): then the per-component coefficients are
        computed once per run of equal keys and expanded."""
        n = t_s.shape[0]
        change = torch.ones(n, dtype=torch.bool, device=t_s.device)
        if n > 1:
            change[1:] = (t_s[1:] != t_s[:-1]) | (dt_s[1:] != dt_s[:-1]) | (fresh[1:] != fresh[:-1])
        starts = torch.nonzero(change).squeeze(1)
        if 4 * starts.numel() > n:  # per device, in float32
            return self._coefficients(t_s, dt_s, fresh, torch.float32)
        keep, std, inv_sd = self._coefficients(t_s[starts], dt_s[starts], fresh[starts], torch.float64)
        if starts.numel() > 1:
            run = torch.cumsum(change, 0) - 1
            keep, std, inv_sd = keep.index_select(0, run), std.index_select(0, run), inv_sd.index_select(0, run)
        return keep, std, inv_sd

    def _coefficients(self, t_s: torch.Tensor, dt_s: torch.Tensor, fresh: torch.Tensor,
                      dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per row: exp(-dt/tau) (0 where fresh), the innovation std (the marginal std where fresh),
        both (rows, J) float32, and 1/sqrt(V(t)) (rows,) float32 (0 where V = 0)."""
        rate = (1.0 / self.tau_s).to(dtype)
        q = torch.expm1(t_s.to(dtype).unsqueeze(1) * (-2.0 * rate)).neg_()  # Var Y_j(t) / w
        total = q.sum(1) * self.weight
        e = torch.expm1(dt_s.to(dtype).unsqueeze(1) * -rate)  # exp(-dt/tau) - 1
        keep = (e + 1.0).masked_fill_(fresh.unsqueeze(1), 0.0)
        var = torch.where(fresh.unsqueeze(1), q, e.mul_(e + 2.0).neg_())  # 1 - exp(-2 dt/tau)
        std = var.mul_(self.weight).sqrt_()
        inv_sd = torch.where(total > 0, total.clamp(min=1e-300).rsqrt(), torch.zeros_like(total))
        return keep.float(), std.float(), inv_sd.float()

    def burst(self, n: int, t_s: float, reads: int, generator: torch.Generator) -> torch.Tensor:
        """Relative noise / Qs of ``reads`` reads t_read apart from a fresh process, the first at
        ``t_s``: (n, reads) float32, column k with variance L(t_s + k t_read)."""
        coeff = self._burst_matrix(t_s, reads)
        noise = torch.randn((n, reads * self.components), generator=generator, dtype=torch.float32,
                            device=generator.device)
        # Elementwise products summed in float64, not a float32 GEMM: BLAS may sum in a different
        # order at another thread count, and the same seed must give the same bytes everywhere.
        noise64, coeff64 = noise.double(), coeff.to(noise.device, torch.float64)
        return torch.stack([(noise64 * coeff64[:, k]).sum(1) for k in range(reads)], dim=1).float()

    def _burst_matrix(self, t_s: float, reads: int) -> torch.Tensor:
        """(reads * J, reads): read k's noise sum_j sqrt(L_k / V_k) Y_j(t_k) as a linear map of
        the (reads, J) independent normals (Y_j(t_0) from the marginal, then OU steps of t_read)."""
        key = (float(t_s), int(reads))
        if key not in self._bursts:
            times = t_s + self.t_read_s * torch.arange(reads, dtype=torch.float64)
            a = torch.exp(-self.t_read_s / self.tau_s)
            b = torch.sqrt(self.weight * -torch.expm1(-2.0 * self.t_read_s / self.tau_s))
            first = torch.sqrt(self.weight * -torch.expm1(-2.0 * t_s / self.tau_s))
            lag = torch.arange(reads).unsqueeze(1) - torch.arange(reads)  # [k, i] = k - i
            decay = torch.where(lag.unsqueeze(-1) >= 0, a ** lag.clamp(min=0).unsqueeze(-1), 0.0)  # [k, i, j]
            drive = torch.cat([first.unsqueeze(0), b.expand(reads - 1, -1)])  # [i, j]: Y(t_0), then steps
            coeff = (decay * drive * torch.sqrt(self._scale2(times)).view(reads, 1, 1)).permute(1, 2, 0)  # [i, j, k]
            self._bursts[key] = coeff.reshape(reads * self.components, reads).to(torch.float32).contiguous()
        return self._bursts[key]
