"""What the program-and-verify tests share: K = 8 levels at g_max = 25 uS, exact pulses, sessions."""

import torch

from twin.device.pcm import PCMParameters, PCMStatistics
from twin.device.program_verify import ProgramVerifySession, PulseParameters

K = 8
G_MAX = 25.0
STEP = G_MAX / K


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def exact_stats() -> PCMStatistics:
    """No programming noise, no read noise, no drift: pulses land where the model says."""
    return PCMStatistics(PCMParameters(prog_noise_scale=0, read_noise_scale=0, drift_scale=0))


def exact_pulses(**kw) -> PulseParameters:
    """A partial-SET of exactly one level step and a tight band (overridable)."""
    base = dict(partial_set_step_mean_us=STEP, partial_set_step_std_us=0.0,
                verify_tolerance_abs_us=0.1, verify_tolerance_rel=0.0)
    base.update(kw)
    return PulseParameters(**base)


def pv_session(devices, index, g_target, params, seed=0, rows=4, cols=8, now_ns=0, from_reset=True):
    return ProgramVerifySession(devices, index, g_target, params, gen(seed), rows, cols, now_ns, from_reset)
