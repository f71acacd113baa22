"""The one-pass program-and-verify kernel (campaign granularity, twin/device/pv_kernel.py) against
the round-by-round session that the round and pulse granularities run: the same physics, so exact
agreement where nothing is random, and agreement in distribution where everything is."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from pv_helpers import K, STEP, exact_pulses, exact_stats, gen
from tiny_chip import tiny_chip
from twin.chip.events import Programmed
from twin.device.faults import NEVER, DeviceFaults
from twin.device.pcm import DeviceArray
from twin.device.program_verify import ProgramVerifySession, PulseParameters
from twin.device import pv_kernel
from twin.device.parameters import PCMParameters
from twin.toolchain.deploy import LayerQuantization
from twin.toolchain.quantize import QuantSteps
from twin.toolchain.specs import TileGeometry

ROWS, COLS = 4, 8


def _reference_rounds(session: ProgramVerifySession) -> dict[str, list[int]]:
    rounds = {f: [] for f in ("partial_set", "reset", "verify_devices", "verify_rows")}
    while not session.done:
        outcome = session.step(0)
        for f in rounds:
            rounds[f].append(getattr(outcome, f))
    return rounds


def _faults(n: int, seed: int) -> DeviceFaults:
    """Every fifth device stuck (low or high), the last line dead, a pulse in four failing."""
    stuck = torch.arange(n) % 5 == 0
    stuck_us = torch.where(torch.arange(n) % 10 == 0, 0.0, 25.0)
    dead_from = torch.where(torch.arange(n) >= n - COLS, 0, NEVER)
    return DeviceFaults(stuck, stuck_us, dead_from, 0.25, gen(seed))


@pytest.mark.parametrize("from_reset", [True, False])
@pytest.mark.parametrize("with_faults", [False, True])
def test_kernel_matches_the_session_exactly_when_nothing_is_random(from_reset, with_faults):
    # Exact pulses and reads: every decision is the same, so pulses per device, convergence, the
    # final state and every per-round count (pulses of each kind, verify reads, line passes) must be.
    # Faults too: failed pulses come from the faults' own stream, one draw per active device per
    # round in the same order on both paths.
    rng = np.random.default_rng(4)
    n = 3 * ROWS * COLS  # three lines ... twelve lines of two signs: several lines per round
    levels = torch.from_numpy(rng.integers(0, K + 1, n)).to(torch.int16)
    start = torch.from_numpy(rng.uniform(0, 30, n).astype(np.float32))  # some above their band: RESETs
    params = exact_pulses(max_iterations=6)  # some of the high ones run out of pulses
    arrays = []
    for _ in range(2):
        devices = DeviceArray(K, exact_stats(), levels)
        devices.g_prog[:] = start
        devices.faults = _faults(n, 9) if with_faults else None
        arrays.append(devices)
    index = torch.arange(n)
    ref = ProgramVerifySession(arrays[0], index, arrays[0].target_conductance(), params, gen(0), ROWS, COLS, 0,
                               from_reset)
    expected = _reference_rounds(ref)
    ref_result = ref.finish(0)
    out = pv_kernel.program_verify(arrays[1], index, arrays[1].target_conductance(), params,
                                   gen(1), gen(0), COLS, 0, from_reset)
    out.commit(arrays[1], 0, gen(0))
    got = out.result
    assert got.pulses_per_device.tolist() == ref_result.pulses_per_device.tolist()
    assert got.converged.tolist() == ref_result.converged.tolist()
    assert not bool(got.converged.all()) and bool(got.converged.any())  # both outcomes exercised
    assert torch.equal(got.last_read.isnan(), ref_result.last_read.isnan())
    assert torch.allclose(got.last_read.nan_to_num(-1), ref_result.last_read.nan_to_num(-1))
    assert torch.allclose(arrays[1].g_prog, arrays[0].g_prog)
    assert {f: getattr(out.counts, f).tolist() for f in expected} == expected
    assert (got.partial_set, got.reset, got.rounds) == (ref_result.partial_set, ref_result.reset, ref_result.rounds)
    assert max(expected["verify_rows"]) > 1 and sum(expected["reset"]) > 0
    if with_faults:
        assert got.failed_pulses.tolist() == ref_result.failed_pulses.tolist() and int(got.failed_pulses.sum()) > 0
    else:
        assert got.failed_pulses is None and ref_result.failed_pulses is None


def test_kernel_refuses_what_it_does_not_model():
    devices = DeviceArray(K, exact_stats(), torch.zeros(4, dtype=torch.int16))
    for params in (exact_pulses(verify_reads=2), exact_pulses(partial_set_step_mode="adaptive",
                                                               adaptive_step_min_us=0.1)):
        assert not pv_kernel.supports(devices, params)
        with pytest.raises(ValueError, match="round-by-round"):
            pv_kernel.program_verify(devices, torch.arange(4), torch.full((4,), STEP), params,
                                     gen(1), gen(0), COLS, 0, True)


def _residual_run(granularity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A chip of tiles of 40 x 40 holding one random 300 x 6 layer (K = 8), on IBM's
    statistics and the default pulse model, deployed and corrected daily for 3 days. Returns the
    residual (true conductance - commanded target, uS) and pulses of every pulsed device, for the
    deployment and for the corrections apart."""
    rng = np.random.default_rng(0)
    shape = (300, 6)  # 6 inputs: tiny_chip evaluates on 6-feature samples
    quant = {"fc": LayerQuantization(QuantSteps(0.1, 0.1, K), rng.integers(0, K + 1, shape).astype(np.int16),
                                     rng.integers(0, K + 1, shape).astype(np.int16), report=None)}
    model = nn.Sequential(OrderedDict(fc=nn.Linear(shape[1], shape[0], bias=False)))
    day = 86_400 * 10**9
    run = tiny_chip(pcm=PCMParameters(), pulses=PulseParameters(), decoder="drift_aware", levels=K, quant=quant,
                    model=model, granularity=granularity, interval_ns=day, duration_ns=3 * day + 1,
                    checkpoints=(10**9,), geometry=TileGeometry(40, 40, 16))
    found = {True: ([], []), False: ([], [])}

    def record(event: Programmed) -> None:
        pulsed = event.pulses > 0
        index = torch.from_numpy(event.index[pulsed])
        g = run.chip.devices.g_prog[index]  # just committed
        target = run.chip.devices.level_conductance(torch.from_numpy(event.levels[pulsed]))
        found[event.initial][0].append((g - target).numpy())
        found[event.initial][1].append(event.pulses[pulsed])

    run.chip.bus.attach(record, Programmed)
    run.run()
    return tuple(np.concatenate(found[initial][k]) for initial in (True, False) for k in (0, 1))


def test_kernel_residuals_agree_with_the_per_pulse_mode_in_distribution():
    # The statistical check: the kernel draws in another order, so bytes differ, but the
    # residual (and pulses) distributions must not. Two-sample KS, fixed seeds (deterministic);
    # n = 3,856 devices at deployment and ~6,700 corrections per side (measured: p = 0.13, 0.81, 0.64, 0.81;
    # a partial-SET spread 30% too wide gives p = 3e-3 and 3e-5 on the pulses).
    fast, slow = _residual_run("campaign"), _residual_run("pulse")
    names = ("deployment residual", "deployment pulses", "correction residual", "correction pulses")
    for name, a, b in zip(names, fast, slow):
        assert min(a.size, b.size) > 1000, (name, a.size, b.size)
        p = stats.ks_2samp(a, b).pvalue
        assert p > 0.01, f"{name}: KS p = {p:.2g} (n = {a.size}, {b.size})"
    # and the spread itself is the calibrated one, not merely equal between two wrong paths
    assert 0.3 < fast[0].std() < 1.2 and 0.3 < slow[0].std() < 1.2
