"""The bench's floor (bench/workload.py, bench/floor.py) on a tiny chip: the work sequence recorded
from the bus matches what the run's ledger booked, and the replay runs. No timing is asserted."""

import sys
import typing
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from torch import nn

from tiny_chip import tiny_chip
from twin.chip.events import Command
from twin.chip.pulse_generator import Granularity
from twin.device.parameters import PCMParameters, PulseParameters
from twin.units import DAY

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench.*
from bench.floor import floor_seconds  # noqa: E402
from bench.workload import BASELINE_FORWARDS, OP_ACCURACY, OP_PROBE, OP_PV, WorkRecorder  # noqa: E402

CHECKPOINTS = (DAY // 2, 5 * DAY, 10 * DAY)


def recorded_tiny_run(granularity: str):
    """Ten days of daily correction on the tiny chip with IBM's noise and drift (corrections happen)."""
    run = tiny_chip(pcm=PCMParameters(), pulses=PulseParameters(), decoder="drift_aware", interval_ns=DAY,
                    duration_ns=10 * DAY, checkpoints=CHECKPOINTS, granularity=granularity)
    recorder = WorkRecorder.for_assembly(run)
    probe_commands = []
    run.chip.bus.attach(lambda e: probe_commands.append(e) if e.kind == "probe" and not e.done else None, Command)
    run.run()
    return run, recorder.sequence(), len(probe_commands)


@pytest.mark.parametrize("granularity", typing.get_args(Granularity))
def test_recorded_work_matches_the_ledger(granularity):
    run, seq, probe_commands = recorded_tiny_run(granularity)
    counts, t = run.observers.ledger.counts, seq.totals
    assert t["pulses"] == counts["partial_set"] + counts["reset"] > 0  # summary.json's pulses.total
    assert t["partial_set"] == counts["partial_set"] and t["reset"] == counts["reset"]
    assert t["initial_pulses"] == counts["initial_partial_set"] + counts["initial_reset"] > 0
    assert t["verify_devices"] == counts["verify_devices"]
    assert t["verify_rows"] == counts["verify_row_reads"]
    assert t["probes"] == probe_commands == len(run.observers.campaigns.rows) == counts["probe_row_reads"] // (2 * 4)
    assert t["probe_devices_charged"] == counts["probe_devices"]  # no GDC on the tiny chip: probes only
    assert t["probe_devices_drawn"] == sum(int(run.chip.layout.used[r.tile].numel())
                                           for r in run.observers.campaigns.rows.values())
    samples = run.observers.accuracy.samples
    assert t["checkpoints"] == len(run.observers.accuracy.rows) == len(CHECKPOINTS)
    assert t["accuracy_samples"] == len(CHECKPOINTS) * samples
    # the flat sequence: one entry per round, per probe, per accuracy sample, in that order of events
    assert (seq.kind == OP_PV).sum() == t["rounds"] + t["initial_rounds"] == seq.pulses.size
    assert int(seq.pulses.sum()) == t["pulses"] + t["initial_pulses"]
    assert int(seq.pulses[~seq.initial].sum()) == t["pulses"]
    assert (seq.kind == OP_PROBE).sum() == probe_commands
    # per sample the run's forward pass and the unmaintained baselines' two (left alone, GDC only)
    assert t["baseline_forwards"] == BASELINE_FORWARDS * t["accuracy_samples"]
    assert (seq.kind == OP_ACCURACY).sum() == t["accuracy_samples"] + t["baseline_forwards"]
    first_probe = int(np.flatnonzero(seq.kind == OP_PROBE)[0])
    assert seq.initial[: int((seq.kind[:first_probe] == OP_PV).sum())].all()  # deployment comes first


def test_the_recorder_takes_per_round_and_per_session_events():
    recorder = WorkRecorder([5, 7], samples=2, images=8)
    recorder.on_rounds(SimpleNamespace(partial_set=3, reset=1, verify_devices=4, verify_rows=2, initial=False))
    recorder.on_rounds(SimpleNamespace(partial_set=np.array([5, 2, 0], dtype=np.int64),
                                       reset=np.array([1, 0, 1], dtype=np.int64),
                                       verify_devices=np.array([9, 2, 0], dtype=np.int64),
                                       verify_rows=np.array([3, 1, 0], dtype=np.int64), initial=True))
    recorder.on_command(SimpleNamespace(kind="probe", done=False, tile=1))
    recorder.on_command(SimpleNamespace(kind="probe", done=True, tile=1))
    recorder.on_checkpoint(SimpleNamespace())
    seq = recorder.sequence()
    assert seq.kind.tolist() == [OP_PV] * 4 + [OP_PROBE] + [OP_ACCURACY] * 2 * (1 + BASELINE_FORWARDS)
    assert seq.size.tolist() == [4, 9, 2, 1, 7] + [8] * 6  # max(pulses, verify reads); drawn devices; images
    assert seq.pulses.tolist() == [4, 6, 2, 1]
    assert seq.totals["pulses"] == 4 and seq.totals["initial_pulses"] == 9 and seq.totals["initial_rounds"] == 3


def test_the_floor_replays_the_sequence():
    run, seq, _ = recorded_tiny_run("campaign")
    model = nn.Sequential(OrderedDict(fc=nn.Linear(6, 4, bias=False)))  # the tiny chip's network
    accuracy = run.observers.accuracy
    floor = floor_seconds(seq, model, accuracy.x_test, accuracy.y_test, repeats=2)
    assert len(floor.times_s) == 2 and floor.best_s == min(floor.times_s)
    assert floor.ops == seq.counts() and sum(floor.ops.values()) == len(seq)
    assert min(floor.pv_s, floor.probe_s, floor.accuracy_s) >= 0
