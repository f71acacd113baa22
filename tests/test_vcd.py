"""Waveforms (``outputs.vcd``, twin/report/vcd.py, docs/waveforms.md): the VCD file is read back
with pyvcd's reader and its transitions are checked against the run's own records: campaign
holds, program-and-verify rounds, pulses (at 9.5 years, to the nanosecond), the traffic queue."""

import io
import json
import pickle
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from vcd.reader import TokenKind, tokenize

from twin.chip.events import Busy, Power, ProgramRounds, Programmed, Pulse, StateChange
from twin.cli import main
from twin.report.records import collect
from twin.report.vcd import PULSE_CODES, WaveformRecorder
from twin.report.writers import write_outputs
from twin.resume import Checkpointer, CheckpointSchedule, run_checkpointed
from twin.scenario.schema import load_scenario
from twin.simulate import build
from twin.units import DAY, YEAR

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "default.yaml"
FAST = ["checkpoints.count=3", "evaluation.accuracy_samples=1", "network.sa_iterations=200", "network.sa_restarts=0",
        "evaluation.test_images=50", "chip.rows=64", "chip.cols=64"]
SHORT = ["duration=4 d", *FAST]  # campaigns at 1, 2 and 3 days
WINDOW = "outputs.vcd={start: 1 d, stop: 3 d}"  # campaigns 1 and 2; the one at 3 d is past stop


def parse(text: str) -> SimpleNamespace:
    """The file as pyvcd's reader sees it: per signal path its (time, value) changes (the values
    dumped at the first time included), the timestamps, and the comment."""
    ids, scope, changes, times, now, comment = {}, [], defaultdict(list), [], None, ""
    for token in tokenize(io.BytesIO(text.encode())):
        kind = token.kind
        if kind is TokenKind.COMMENT:
            comment = token.data
        elif kind is TokenKind.SCOPE:
            scope.append(token.scope.ident)
        elif kind is TokenKind.UPSCOPE:
            scope.pop()
        elif kind is TokenKind.VAR:
            ids[token.var.id_code] = ".".join([*scope, token.var.reference])
        elif kind is TokenKind.CHANGE_TIME:
            now = token.time_change
            times.append(now)
        elif kind is TokenKind.CHANGE_SCALAR:
            changes[ids[token.scalar_change.id_code]].append((now, int(token.scalar_change.value)))
        elif kind is TokenKind.CHANGE_VECTOR:
            changes[ids[token.vector_change.id_code]].append((now, token.vector_change.value))
        elif kind is TokenKind.CHANGE_STRING:
            changes[ids[token.string_change.id_code]].append((now, token.string_change.value))
    return SimpleNamespace(signals=set(ids.values()), changes=changes, times=times, comment=comment)


def value_at(changes: list[tuple[int, object]], t: int) -> object:
    return [v for when, v in changes if when <= t][-1]


def edges(changes: list[tuple[int, int]], start: int) -> tuple[list[int], list[int]]:
    """A wire's rising and falling times after the window's first instant."""
    rises = [t for (t, v), (_, before) in zip(changes[1:], changes) if v and not before and t > start]
    falls = [t for (t, v), (_, before) in zip(changes[1:], changes) if not v and before and t > start]
    return rises, falls


# --- the recorder on events made by hand ---------------------------------------------------------

def test_values_at_start_come_from_before_the_window_and_nothing_outside_it_is_recorded():
    rec = WaveformRecorder(100, 200, tiles=2, channels=4, pulses=False, traffic=False)
    for event in [StateChange(50, "c", "PROBE", 0, 1), Busy(20, "t", 60, 1, "program", 1),
                  StateChange(100, "c", "DECODE", 0, 1),  # at start: the value shown at start
                  Busy(90, "t", 150, 0, "probe", 1), StateChange(150, "c", "CORRECT", 0, 1),
                  ProgramRounds(150, "p", 0, np.array([10, 10, 10]), np.array([5, 5, 2]), np.array([0, 1, 0]),
                                np.array([4, 4, 1]), np.array([5, 6, 2]), False),
                  Programmed(180, "p", 0, np.zeros(0), np.zeros(0), np.zeros(0), False, 1),
                  Busy(150, "t", 180, 0, "program", 1), Busy(0, "t", 300, 0, "deploy"),  # told late, overlapping
                  StateChange(250, "c", "IDLE", None, 1), Power(199, "chip.power", False)]:
        for kind, handler in ((StateChange, rec._state), (Busy, rec._busy), (ProgramRounds, rec._rounds),
                              (Programmed, rec._programmed), (Power, rec._power)):
            if isinstance(event, kind):
                handler(event)
    text, summary = rec.vcd_file()
    vcd = parse(text)
    c = vcd.changes
    assert vcd.times[0] == 100 and vcd.times[-1] == 200 and all(100 <= t <= 200 for t in vcd.times)
    assert c["chip.controller.state"] == [(100, "DECODE"), (150, "CORRECT")]  # IDLE at 250: outside
    assert c["chip.tile0.probe"] == [(100, 1), (150, 0)]  # held since 90: high at start
    assert c["chip.tile0.program"] == [(100, 0), (150, 1), (180, 0)]  # probe hands over at 150
    assert c["chip.tile0.busy"] == [(100, 1)]  # the deployment holds it throughout: no glitch at 150
    assert c["chip.tile1.program"] == [(100, 0)]  # over before the window
    assert c["chip.pulse_generator.round"] == [(100, 0), (150, 1), (160, 2), (170, 3), (180, 0)]
    assert c["chip.pulse_generator.partial_set"] == [(100, 0), (150, 5), (170, 2), (180, 0)]  # 5, 5: one change
    assert c["chip.power"] == [(100, 1), (199, 0)]
    assert summary == {"start_ns": 100, "stop_ns": 200, "end_ns": 200, "changes": 17, "dropped": 0, "signals": 13,
                       "tiles": 2, "tiles_left_out": 0}
    assert summary["changes"] == sum(len(changes) - 1 for changes in c.values())  # those after the values at start
    assert not any(s.startswith("chip.pulse_generator.channel") for s in vcd.signals)  # per pulse: pulse mode only


def test_each_pulse_takes_the_lowest_free_channel_and_active_counts_them_all():
    rec = WaveformRecorder(0, 1000, tiles=1, channels=2, pulses=True, traffic=False)
    for start, end, kind in [(10, 50, "reset"), (10, 160, "partial_set"), (50, 90, "partial_set"),
                             (60, 100, "partial_set")]:  # the third pulse at once: past the shown channels
        rec._pulse(Pulse(start, "p", end, 0, kind))
    c = parse(rec.vcd_file()[0]).changes
    assert c["chip.pulse_generator.channel0"] == [(0, 0), (10, PULSE_CODES["reset"]), (50, PULSE_CODES["partial_set"]),
                                                  (90, 0)]  # a RESET then a partial-SET, back to back
    assert c["chip.pulse_generator.channel1"] == [(0, 0), (10, 1), (160, 0)]
    assert c["chip.pulse_generator.active"] == [(0, 0), (10, 2), (60, 3), (90, 2), (100, 1), (160, 0)]


# --- a run at campaign granularity -------------------------------------------------------------------

@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory):
    scenario = load_scenario(DEFAULT, [*SHORT, WINDOW])
    run = build(scenario)
    seen = defaultdict(list)
    run.chip.bus.attach(lambda event: seen[type(event)].append(event), ProgramRounds, StateChange)
    chip = run.chip
    # more windows on the same run: one that opens 5 us into the first campaign (tile 0 is probed
    # then), and the main one cut at 200 changes
    late = WaveformRecorder(DAY + 5_000, 3 * DAY, tiles=chip.layout.tiles, channels=16, pulses=False, traffic=False)
    capped = WaveformRecorder(DAY, 3 * DAY, tiles=chip.layout.tiles, channels=16, pulses=False, traffic=False,
                              max_changes=200)
    for recorder in (late, capped):
        recorder.attach(chip.bus)
    run.run()
    result = collect(run, 0.0)
    folder = write_outputs(result, scenario, tmp_path_factory.mktemp("vcd") / "run")
    return SimpleNamespace(scenario=scenario, run=run, result=result, folder=folder, seen=seen, late=late,
                           capped=capped, vcd=parse(result.vcd))


def test_every_probe_and_program_hold_appears_at_its_nanoseconds(campaign_run):
    r, vcd = campaign_run, campaign_run.vcd
    start, stop = DAY, 3 * DAY
    assert (r.folder / "waveform.vcd").read_text() == r.result.vcd
    assert json.loads((r.folder / "summary.json").read_text())["vcd"] == r.result.summary["vcd"]
    rows = {(row["campaign"], row["tile"]): row for row in r.result.campaigns}
    holds = {key: row.holds for key, row in r.run.observers.campaigns.rows.items()}
    assert {c for c, _ in rows} == {1, 2, 3}
    for tile in range(r.run.chip.layout.tiles):
        expected = {"probe": ([], []), "program": ([], [])}
        for (campaign, t), intervals in sorted(holds.items()):
            if t != tile or not start < rows[campaign, t]["start_ns"] < stop:
                continue
            for activity, (a, b) in zip(("probe", "program"), intervals):  # a probe, then program-and-verify
                expected[activity][0].append(a)
                expected[activity][1].append(b)
            assert rows[campaign, t]["start_ns"] == intervals[0][0]  # campaigns.csv: from the probe ...
            assert rows[campaign, t]["end_ns"] == intervals[-1][1]  # ... to the end of its last command
        for activity in ("probe", "program"):
            assert edges(vcd.changes[f"chip.tile{tile}.{activity}"], start) == expected[activity]
        assert len(expected["probe"][0]) == 2  # campaigns 1 and 2; 3 starts at stop
    assert vcd.times[0] == start and vcd.times[-1] == stop and all(start <= t <= stop for t in vcd.times)


def test_rounds_and_controller_states_follow_the_events(campaign_run):
    r, c = campaign_run, campaign_run.vcd.changes
    start, stop = DAY, 3 * DAY
    rounds = [(int(t), i, event) for event in r.seen[ProgramRounds] for i, t in enumerate(event.starts_ns())
              if start < t < stop]
    assert rounds and {t for t, v in c["chip.pulse_generator.round"] if v} == {t for t, _, _ in rounds}
    for t, i, event in rounds:  # each round's number and pulses from its start
        assert value_at(c["chip.pulse_generator.round"], t) == i + 1
        assert value_at(c["chip.pulse_generator.partial_set"], t) == event.partial_set[i]
        assert value_at(c["chip.pulse_generator.reset"], t) == event.reset[i]
        assert value_at(c["chip.pulse_generator.verify_rows"], t) == event.verify_rows[i]
    before = [e.state for e in r.seen[StateChange] if e.t_ns <= start]
    instants = {start: before[-1] if before else "IDLE"}
    for event in r.seen[StateChange]:  # several transitions in one instant: the last one shows
        if start < event.t_ns < stop:
            instants[event.t_ns] = event.state
    expected = []
    for t, state in sorted(instants.items()):  # a return to the state shown is no change
        if not expected or state != expected[-1][1]:
            expected.append((t, state))
    assert c["chip.controller.state"] == expected and len(expected) > 10


def test_a_window_opening_inside_a_hold_starts_high(campaign_run):
    r = campaign_run
    c = parse(r.late.vcd_file()[0]).changes
    t0 = DAY + 5_000
    high = 0
    for (_, tile), row in r.run.observers.campaigns.rows.items():
        for activity, (a, b) in zip(("probe", "program"), row.holds):
            if a <= t0 < b:
                assert value_at(c[f"chip.tile{tile}.{activity}"], t0) == 1
                high += 1
    assert high == 1  # tile 0's probe, in fact
    for tile in range(r.run.chip.layout.tiles):  # the same edges as the full window's, after t0
        for activity in ("probe", "program"):
            full = edges(r.vcd.changes[f"chip.tile{tile}.{activity}"], t0)
            assert edges(c[f"chip.tile{tile}.{activity}"], t0) == full


def test_the_change_cap_ends_the_file_early_and_says_so(campaign_run):
    text, summary = campaign_run.capped.vcd_file()
    full = campaign_run.vcd
    cut = summary["end_ns"]
    assert DAY < cut < 3 * DAY and summary["dropped"] > 0 and summary["changes"] <= 200
    vcd = parse(text)
    assert vcd.times[-1] == cut
    for signal, changes in full.changes.items():  # exactly the full file up to the cut
        assert vcd.changes[signal] == [(t, v) for t, v in changes if t < cut]


def test_same_run_same_bytes_and_no_window_changes_nothing(campaign_run, tmp_path):
    again = build(campaign_run.scenario)
    again.run()
    assert collect(again, 0.0).vcd == campaign_run.result.vcd  # no date in the header
    plain_scenario = load_scenario(DEFAULT, SHORT)
    assert "vcd" not in plain_scenario.resolved_dict()["outputs"]  # the hash of files without it holds
    plain = build(plain_scenario)
    plain.run()
    result = collect(plain, 0.0)
    folder = write_outputs(result, plain_scenario, tmp_path / "plain")
    assert result.vcd is None and "vcd" not in result.summary and not (folder / "waveform.vcd").exists()
    ours = campaign_run.result
    assert (result.timeline, result.campaigns, result.device_pulses) == (ours.timeline, ours.campaigns,
                                                                         ours.device_pulses)
    strip = ("vcd", "scenario", "wall_s")
    assert {k: v for k, v in result.summary.items() if k not in strip} == \
        {k: v for k, v in ours.summary.items() if k not in strip}  # events included: recording costs no event


# --- per pulse at 9.5 years ---------------------------------------------------------------------

def test_a_pulse_at_nine_and_a_half_years_lasts_exactly_its_duration():
    at = 19 * YEAR // 2
    scenario = load_scenario(DEFAULT, [*FAST, "duration=10 y", "policy.interval=9.5 y", "simulation.granularity=pulse",
                                       "timing.reset_pulse=37 ns", "timing.partial_set_pulse=151 ns",
                                       "chip.pulse_generator.channels=8",
                                       f"outputs.vcd={{start: 9.5 y, stop: {at + 10**7} ns}}"])
    run = build(scenario)
    pulses = []
    run.chip.bus.attach(pulses.append, Pulse)
    run.run()
    vcd = parse(collect(run, 0.0).vcd)
    ours = [p for p in pulses if p.t_ns >= at]
    assert ours and ours[0].t_ns < at + 10**6 and ours[-1].end_ns < at + 10**7  # the campaign, within the window
    duration = {"reset": 37, "partial_set": 151}
    codes = {code: kind for kind, code in PULSE_CODES.items()}
    starts = {(p.t_ns, p.kind) for p in ours}
    segments = []  # (start, end, kind): a channel's stretches at one pulse kind
    for c in range(8):
        changes = vcd.changes[f"chip.pulse_generator.channel{c}"]
        for (t, v), (end, _) in zip(changes, changes[1:]):
            if v:
                segments.append((t, end, codes[v]))
    for t, end, kind in segments:  # each begins with a pulse and lasts whole pulses (back to back)
        assert (t, kind) in starts and (end - t) % duration[kind] == 0
    assert sum((end - t) // duration[kind] for t, end, kind in segments) == len(ours)
    for kind in ("reset", "partial_set"):  # lone pulses (a channel idle or at the other kind on both sides)
        lone = [(t, end) for t, end, k in segments if k == kind and end - t == duration[kind]]
        assert lone and at <= lone[0][0] < at + 10**6  # 9.5 y and a few microseconds, to the nanosecond
    begun, ended = np.sort([p.t_ns for p in ours]), np.sort([p.end_ns for p in ours])
    for t, v in vcd.changes["chip.pulse_generator.active"]:  # pulses under way at t
        assert v == np.searchsorted(begun, t, side="right") - np.searchsorted(ended, t, side="right")


# --- resumed runs, traffic, bad input -------------------------------------------------------------

def test_a_resumed_run_writes_the_same_waveform(tmp_path):
    scenario = load_scenario(DEFAULT, [*SHORT, "outputs.vcd={start: 12 h, stop: 4 d}"])
    watched, blobs = build(scenario), []
    Checkpointer(watched, CheckpointSchedule(every_campaigns=1, every_seconds=0),
                 lambda payload: blobs.append(pickle.dumps(payload)))
    watched.run()
    expected = collect(watched, 0.0)
    assert len(blobs) == 3 and expected.summary["vcd"]["changes"] > 0
    for blob in blobs[:2]:
        resumed = build(scenario)
        resumed.restore(pickle.loads(blob)["state"])
        resumed.resume()
        got = collect(resumed, 0.0)
        assert got.vcd == expected.vcd and got.summary["vcd"] == expected.summary["vcd"]
    schedule = CheckpointSchedule(every_campaigns=1, every_seconds=0)
    first = run_checkpointed(scenario, tmp_path, schedule)  # leaves its last checkpoint in tmp_path
    assert run_checkpointed(scenario, tmp_path, schedule, resume=True).vcd == first.vcd == expected.vcd


def test_the_queue_signal_integrates_to_the_engine_s_own_area():
    scenario = load_scenario(ROOT / "scenarios" / "traffic.yaml",
                             [*SHORT, "traffic.rate=5000 /s", "traffic.windows.steady=2",
                              "traffic.windows.length=10 ms",
                              "outputs.vcd={start: 0 s, stop: 4 d}"])
    run = build(scenario)
    run.run()
    result = collect(run, 0.0)
    c = parse(result.vcd).changes
    queue = c["chip.traffic.in_system"]
    area = sum(v * (t1 - t0) for (t0, v), (t1, _) in zip(queue, [*queue[1:], (4 * DAY, 0)]))
    assert area == run.traffic.records.area_in_system and max(v for _, v in queue) > 0
    merged = []  # the windows the engine simulated, those that touch joined
    for a, b in run.traffic.records.simulated:
        merged[-1:] = [(merged[-1][0], b)] if merged and merged[-1][1] == a else [*merged[-1:], (a, b)]
    assert len(merged) > 2 and edges(c["chip.traffic.simulated"], 0) == (
        [a for a, _ in merged if a > 0], [b for _, b in merged if b < 4 * DAY])
    assert result.summary["vcd"]["dropped"] == 0


@pytest.mark.parametrize("window, field", [
    ("{start: 2 d, stop: 1 d}", "outputs.vcd.stop"),  # stop before start
    ("{start: 1 d, stop: 1 d}", "outputs.vcd.stop"),
    ("{start: 1 d, stop: 2 y}", "outputs.vcd.stop"),  # past the duration (1 y)
    ("{start: 1 d, stop: 1e999 y}", "outputs.vcd.stop"),  # not a finite time
    ("{start: .inf, stop: 1 d}", "outputs.vcd.start"),
    ("{start: -1 d, stop: 1 d}", "outputs.vcd.start"),
    ("{start: 5, stop: 1 d}", "outputs.vcd.start"),  # no unit
    ("{stop: 1 d}", "outputs.vcd.start"),
    ("{start: 1 d, stop: 2 d, step: 1 s}", "outputs.vcd.step"),
])
def test_a_bad_window_exits_2_naming_the_field(capsys, window, field):
    assert main(["validate", str(DEFAULT), "--set", f"outputs.vcd={window}"]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
