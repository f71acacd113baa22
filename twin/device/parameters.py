"""Device parameters (no torch here: the scenario schema derives its sections from them).

``PCMParameters``: IBM's statistical PCM model as aihwkit 1.1.0's ``PCMLikeNoiseModel``;
``PulseParameters``: the program-and-verify pulse response (docs/program-verify.md). Each
default is written once, here (twin/params.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twin.params import check_bounds, param
from twin.units import SECOND

__all__ = ["ENDURANCE_CYCLES", "G_MAX_US", "PCMParameters", "PulseParameters"]

G_MAX_US = 25.0
"""Conductance the PCM model was fitted at (aihwkit pcm_inference; Nandakumar 2019, Joshi 2020)."""

ENDURANCE_CYCLES = 1e9
"""Write cycles a PCM device survives: "endurance ~1e9 cycles" (../shared/reference/pcm-numbers.md,
J. Nanomaterials 2013 review, table 4). The report sets each device's pulses against it."""


@dataclass(frozen=True)
class PCMParameters:
    """Parameters of the statistical PCM model; defaults are aihwkit 1.1.0's ``PCMLikeNoiseModel``.

    ``t0`` and ``t_read`` are integer nanoseconds like every duration; the formulas take them
    in seconds (:attr:`t0_s`, :attr:`t_read_s`). ``read_noise_model``: ``"correlated"``, the 1/f
    noise a process in time whose marginal is aihwkit's (twin/device/read_noise.py), or
    ``"independent"``, aihwkit's snapshot drawn afresh on every read (docs/physics.md).
    """

    prog_noise_scale: float = param(1.0, ge=0, source="aihwkit PCMLikeNoiseModel default")
    read_noise_scale: float = param(1.0, ge=0, source="aihwkit PCMLikeNoiseModel default")
    drift_scale: float = param(1.0, ge=0, source="aihwkit PCMLikeNoiseModel default")
    t0: int = param(20 * SECOND, unit="duration", gt=0, source="aihwkit; Joshi et al. Nat. Commun. 2020")
    t_read: int = param(250, unit="duration", gt=0, source="aihwkit (read pulse width of the 1/f noise fit)")
    read_noise_model: Literal["correlated", "independent"] = param(
        "correlated", source="McWhorter 1957 (1/f as Lorentzians); marginal: aihwkit PCMLikeNoiseModel")
    g_max_us: float = param(G_MAX_US, gt=0, scenario=False, source="aihwkit pcm_inference")  # chip.g_max_us
    prog_coeff: tuple[float, float, float] = param((0.26348, 1.9650, -1.1731), scenario=False,
                                                   source="aihwkit sigma_prog polynomial, uS")
    prog_coeff_g_max_reference_us: float = param(25.0, gt=0, scenario=False,
                                                 source="g_max the polynomial was fitted at")

    def __post_init__(self) -> None:
        check_bounds(self)
        allowed = ("correlated", "independent")
        if self.read_noise_model not in allowed:
            raise ValueError(f'"read_noise_model" must be one of {", ".join(allowed)}, got {self.read_noise_model!r}.')

    @property
    def t0_s(self) -> float:
        """Drift reference time (first read after programming), seconds."""
        return self.t0 / SECOND

    @property
    def t_read_s(self) -> float:
        return self.t_read / SECOND


@dataclass(frozen=True)
class PulseParameters:
    """Pulse and verify parameters of program-and-verify, conductances in uS.

    Defaults: calibrated by Monte-Carlo grid scans (K = 8 and K = 16 levels, g_max = 25 uS,
    aihwkit read noise at age 0, up to 40,000 devices per level, 3 seeds) so that the std of
    (true final G - target) after P&V from RESET matches aihwkit's sigma_prog(gT): within 9.2 % at
    k = 1, 2, 4, 8 of K = 8 (docs/program-verify.md). The pulse step itself is an assumption: no
    published value. The verify band is ``verify_tolerance_abs_us + verify_tolerance_rel * target``.

    P&V as a design knob (docs/program-verify.md, "P&V as a design knob"): ``verify_reads`` reads
    are averaged per verify (each one charged); ``partial_set_step_mode = "adaptive"`` scales each
    partial-SET from the gap left at the last verify read, mean
    ``clamp(adaptive_step_gain * (target - last_read), adaptive_step_min_us, partial_set_step_mean_us)``
    and std ``partial_set_step_std_us`` times the same fraction of the full step. ``"fixed"`` (the
    default) is the calibrated state-independent step, draw for draw.
    """

    partial_set_step_mean_us: float = param(3.0, gt=0, source="assumption, calibrated: docs/program-verify.md")
    partial_set_step_std_us: float = param(1.2, ge=0, source="assumption, calibrated: docs/program-verify.md")
    reset_g_mean_us: float = param(0.0, ge=0, source="assumption: RESET lands near G = 0")
    reset_g_std_us: float = param(0.26348, ge=0, source="aihwkit sigma_prog at G = 0")
    verify_tolerance_abs_us: float = param(0.4, ge=0, source="assumption, calibrated: docs/program-verify.md")
    verify_tolerance_rel: float = param(0.045, ge=0, source="assumption, calibrated: docs/program-verify.md")
    max_iterations: int = param(100, ge=1, source="assumption")
    verify_reads: int = param(1, ge=1, le=64, source="assumption: one read per verify, as the calibration "
                                                     "(at most 64: each verify draws reads x 18 normals per device)")
    partial_set_step_mode: Literal["fixed", "adaptive"] = param("fixed", source="fixed: the calibrated step (docs/program-verify.md); "
                                       "adaptive: error-driven step, after Papandreou et al. ISCAS 2011")
    adaptive_step_gain: float = param(0.5, gt=0, le=1, source="assumption: not published")
    adaptive_step_min_us: float = param(0.1, gt=0, source="assumption: not published")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.verify_tolerance_abs_us == 0 and self.verify_tolerance_rel == 0:
            raise ValueError('"verify_tolerance_abs_us" and "verify_tolerance_rel" cannot both be 0.')
        for name in ("max_iterations", "verify_reads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f'"{name}" must be an integer >= 1.')
        if self.partial_set_step_mode not in ("fixed", "adaptive"):
            raise ValueError(f'"partial_set_step_mode" must be "fixed" or "adaptive", '
                             f'got {self.partial_set_step_mode!r}.')
        if self.partial_set_step_mode == "adaptive" and self.adaptive_step_min_us > self.partial_set_step_mean_us:
            raise ValueError('"adaptive_step_min_us" must be <= partial_set_step_mean_us (adaptive step).')

    def band(self, g_target):
        """Half-width of the verify band around each target (uS)."""
        return self.verify_tolerance_abs_us + self.verify_tolerance_rel * g_target
