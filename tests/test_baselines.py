"""The unmaintained baselines of every run (twin.chip.accuracy.UnmaintainedBaselines): the same
programming never corrected, without and with GDC, evaluated in the same run."""

import torch

from firmware_model.policies import NoCorrection
from tests.tiny_chip import tiny_chip
from twin.device.parameters import PCMParameters
from twin.device.pcm import DeviceArray
from twin.report.records import ACCURACY_KEYS, _timeline

PHYSICS = PCMParameters()  # IBM's statistics: drift, programming and read noise all on
CHECKPOINTS = (1_200_000, 1_900_000, 2_400_000)


def _run(policy=None, attach_baselines: bool = True):
    assembly = tiny_chip(pcm=PHYSICS, policy=policy, checkpoints=CHECKPOINTS, seed=3)
    if not attach_baselines:  # the observer stays out of the bus: the chip runs without it
        baselines = assembly.observers.baselines
        assembly.chip.bus._observers = [(kinds, fn) for kinds, fn in assembly.chip.bus._observers
                                        if getattr(fn, "__self__", None) is not baselines]
    assembly.run()
    return assembly


def test_a_correcting_run_is_compared_with_exactly_the_programming_left_alone():
    corrected, alone = _run(), _run(NoCorrection())
    assert corrected.chip.campaigns > 0 and alone.chip.campaigns == 0
    # the same seed: the same first programming; only the corrected chip was pulsed afterwards
    n = corrected.observers.baselines.devices.size
    for name in DeviceArray.STATE_FIELDS:
        assert torch.equal(getattr(corrected.observers.baselines.devices, name), getattr(alone.chip.devices, name)[:n])
    moved = corrected.chip.devices.t_prog_ns[:n] != alone.chip.devices.t_prog_ns[:n]
    assert bool(moved.any())  # the corrected chip's devices were reprogrammed; the copy kept its own
    # the baselines' draws are their own stream: the same rows whatever the policy did
    assert corrected.observers.baselines.rows == alone.observers.baselines.rows
    assert len(corrected.observers.baselines.rows) == len(CHECKPOINTS)


def test_the_baselines_change_nothing_the_run_reports():
    with_, without = _run(), _run(attach_baselines=False)
    assert [r.__dict__ for r in with_.observers.accuracy.rows] == [r.__dict__ for r in without.observers.accuracy.rows]
    assert with_.observers.ledger.counts == without.observers.ledger.counts
    assert torch.equal(with_.chip.devices.g_prog, without.chip.devices.g_prog)


def test_the_timeline_carries_both_baselines_beside_the_run():
    timeline = _timeline(_run())
    baselines = _run(NoCorrection()).observers.baselines.rows
    assert [row["accuracy_left_alone"] for row in timeline] == [b.left_alone for b in baselines]
    assert [row["accuracy_gdc_only"] for row in timeline] == [b.gdc_only for b in baselines]
    assert {"accuracy_left_alone", "accuracy_gdc_only"} <= set(ACCURACY_KEYS)  # summary.json's accuracy rows
