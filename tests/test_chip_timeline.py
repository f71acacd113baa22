"""Exact timelines on a tiny noiseless chip, computed by hand (comments show the arithmetic)."""

import math

import numpy as np
import pytest

from twin.chip.ledger import ENERGY_COMPONENTS
from tiny_chip import tiny_chip

PJ = 1e-12
# Initial programming of one tile (from RESET; 4 pulse channels; read cycle 100 ns):
#   used devices: 12 G+ weights (4 at level 2, 8 at level 1), 12 G- weights at level 0,
#   4 reference devices (cell (3,0) at level 1, cell (3,1) at level 2, G+ and G-).
#   round 1: RESET all 28 -> ceil(28/4) * 40 = 280 ns; level-0 devices done; verify the other 16
#            on lines G+ rows 0..3 and G- row 3 = 5 row reads = 500 ns          -> 780 ns
#   round 2: partial-SET 16 (+12.5 uS) -> 4 * 150 = 600 ns; verify 16 on 5 lines = 500 ns;
#            the 10 level-1 devices are done                                       -> 1100 ns
#   round 3: partial-SET 6 -> 2 * 150 = 300 ns; verify 6 on 3 lines = 300 ns      -> 600 ns
TILE_PROGRAMMING_NS = 780 + 1100 + 600
TILE_PROGRAMMING_J = 28 * 10 * PJ + 22 * 5 * PJ + (16 + 16 + 6) * 2 * PJ
PROBE_NS = 2 * 4 * 100  # 2 arrays x 4 rows, one read cycle each
PROBE_J = 32 * 2 * PJ  # every device of the tile sensed once
STEP_NS = 1000


def rows_of(run):
    return run.observers.campaigns.ordered()


def score(run, row) -> dict:
    return run.observers.scoring.scores[(row.campaign, row.tile)]


def test_initial_programming_and_quiet_campaigns_exact():
    run = tiny_chip()
    run.run()
    chip = run.chip
    assert chip.deployed_at_ns == 2 * TILE_PROGRAMMING_NS
    rows = [(r.campaign, r.tile, r.start_ns, r.end_ns) for r in rows_of(run)]
    # A campaign: IDLE->PROBE (1 step), probe tile 0; DECODE, PROBE (2 steps), probe tile 1.
    first = 1_000_000 + STEP_NS
    second = first + PROBE_NS + 2 * STEP_NS
    assert rows == [(1, 0, first, first + PROBE_NS), (1, 1, second, second + PROBE_NS),
                    (2, 0, first + 1_000_000, first + 1_000_000 + PROBE_NS),
                    (2, 1, second + 1_000_000, second + 1_000_000 + PROBE_NS)]
    energy = run.observers.ledger.energy()
    assert energy["initial_programming"] == pytest.approx(2 * TILE_PROGRAMMING_J, rel=1e-12)
    assert energy["probe_read"] == pytest.approx(4 * PROBE_J, rel=1e-12)
    # per campaign: PROBE, DECODE+PROBE, DECODE+IDLE = 5 controller steps
    assert energy["controller"] == pytest.approx(10 * PJ, rel=1e-12)
    assert energy["partial_set"] == energy["reset"] == energy["verify_read"] == 0.0
    assert energy["static"] == pytest.approx(1e-3 * 2.5e-3, rel=1e-12)
    assert energy["total"] == math.fsum(energy[c] for c in ENERGY_COMPONENTS)
    busy = 2 * TILE_PROGRAMMING_NS + 4 * PROBE_NS
    assert run.observers.availability.availability(chip.duration_ns) == pytest.approx(1 - busy / 2_500_000, abs=1e-15)
    assert chip.campaigns == 2
    assert run.observers.scoring.misreads() == 0 and run.observers.scoring.displaced_now() == 0


def test_disturbed_device_is_corrected_with_exact_cost():
    run = tiny_chip()
    chip = run.chip
    target = 0  # tile 0, G+ array, row 0, col 0: level 2 (25 uS)

    def disturb():
        yield chip.env.timeout(500_000)
        chip.devices.g_prog[target] = 8.0  # knocked down between levels 0 and 1

    chip.env.process(disturb())
    run.run()
    records = rows_of(run)
    record = records[0]
    # Decoded as level 1 (nearest multiple of 12.5 uS), 4.5 uS off > 0.25 * 12.5: corrected to level 1.
    # DECODE, CORRECT: 2 steps; then P&V of the one device (not from RESET):
    #   round 1: read (8.0: out of band), partial-SET -> 20.5, read: 150 + 2 * 100 = 350 ns
    #   round 2: read above band -> RESET -> 0, read: 40 + 100 = 140 ns
    #   round 3: partial-SET -> 12.5, read: in band: 150 + 100 = 250 ns
    program_start = record.start_ns + PROBE_NS + 2 * STEP_NS
    assert record.end_ns == program_start + 350 + 140 + 250
    assert (record.partial_set, record.reset, record.devices_corrected) == (2, 1, 1)
    # truly level 2: the firmware cannot know; misread now, and held at the wrong level from now on
    assert score(run, record) == {"misread": 1, "displaced": 1}
    assert record.reads == 8 + 2 + 1 + 1
    assert record.energy["verify_read"] == pytest.approx(4 * 2 * PJ)
    assert record.energy["partial_set"] == pytest.approx(2 * 5 * PJ)
    assert record.energy["reset"] == pytest.approx(10 * PJ)
    # VERIFY, PROBE (2 steps) before tile 1 is probed
    assert records[1].start_ns == record.end_ns + 2 * STEP_NS
    assert chip.devices.t_prog_ns[target] == record.end_ns  # drift age reset
    assert float(chip.devices.g_prog[target]) == 12.5
    # the next campaign reads it right at the level it now holds (no misread), but the error is permanent
    assert records[2].partial_set == 0 and score(run, records[2]) == {"misread": 0, "displaced": 1}
    wear = run.observers.wear.maintenance
    assert wear[target] == 3 and int(wear.sum()) == 3


def test_energy_is_conserved_across_records():
    run = tiny_chip()
    run.run()
    energy = run.observers.ledger.energy()
    in_records = math.fsum(v for r in rows_of(run) for v in r.energy.values())
    # outside any tile: deployment, static power, and the step back to IDLE that ends each campaign
    outside = energy["initial_programming"] + energy["static"] + 2 * 1 * PJ
    assert in_records + outside == pytest.approx(energy["total"], rel=1e-12)


def test_pulse_mode_agrees_with_round_mode():
    from twin.device.parameters import PCMParameters, PulseParameters
    from twin.toolchain.specs import TileGeometry
    from twin.toolchain.deploy import LayerQuantization
    from twin.toolchain.quantize import QuantSteps
    rng = np.random.default_rng(0)
    k_plus = rng.integers(0, 9, (4, 6)).astype(np.int16)
    k_minus = rng.integers(0, 9, (4, 6)).astype(np.int16)
    quant = {"fc": LayerQuantization(QuantSteps(0.1, 0.1, 8), k_plus, k_minus, report=None)}
    runs = {}
    for mode in ("round", "pulse"):
        run = tiny_chip(pcm=PCMParameters(), pulses=PulseParameters(), decoder="drift_aware", levels=8,
                        quant=quant, granularity=mode, interval_ns=86_400 * 10**9, duration_ns=3 * 86_400 * 10**9,
                        checkpoints=(10**9,), geometry=TileGeometry(4, 4, 2))
        run.run()
        runs[mode] = run
    a, b = runs["round"], runs["pulse"]
    la, lb = a.observers.ledger, b.observers.ledger
    assert la.counts == lb.counts  # same physics draws: identical pulses and reads
    assert la.energy() == lb.energy()
    assert la.counts["partial_set"] > 10
    # durations: pulse mode packs RESETs and partial-SETs onto free channels, never slower
    for ra, rb in zip(rows_of(a), rows_of(b)):
        da, db = ra.end_ns - ra.start_ns, rb.end_ns - rb.start_ns
        assert 0.9 * da <= db <= da
    assert 0.9 * a.chip.deployed_at_ns <= b.chip.deployed_at_ns <= a.chip.deployed_at_ns


def test_gdc_reads_inside_an_open_campaign_are_charged_to_no_campaign():
    # a checkpoint falls in the middle of tile 0's probe of campaign 1: its GDC reference reads
    # (1 reference row x 2 arrays per tile, 2 tiles) belong to no campaign
    inside = 1_000_000 + STEP_NS + PROBE_NS // 2
    run = tiny_chip(gdc=True, checkpoints=(inside, 2_400_000))
    run.run()
    rows = rows_of(run)
    assert [r.energy["probe_read"] for r in rows] == pytest.approx([PROBE_J] * 4, rel=1e-12)
    gdc_j = 2 * 2 * (2 * 2) * 2 * PJ  # 2 checkpoints x 2 tiles x 4 devices x 2 pJ
    assert run.observers.ledger.energy()["probe_read"] == pytest.approx(4 * PROBE_J + gdc_j, rel=1e-12)
    assert [r.reads for r in rows] == [8, 8, 8, 8]


def test_spare_tiles_are_built_and_stay_idle():
    run = tiny_chip(tiles=4)
    run.run()
    assert len(run.chip.tiles) == 4 and run.chip.layout.mapped_tiles == 2
    assert run.chip.devices.size == 4 * 32
    assert {r.tile for r in rows_of(run)} == {0, 1}  # the firmware is configured for the mapped tiles
    assert run.chip.deployed_at_ns == 2 * TILE_PROGRAMMING_NS  # nothing to program on the spares
    assert not run.observers.wear.initial[64:].any()


def test_the_event_trace_matches_the_campaign_records_to_the_nanosecond():
    run = tiny_chip(trace=True)
    run.run()
    trace = run.observers.trace.rows
    probes = [(r["t_ns"], r["detail"]) for r in trace if r["event"] == "Busy" and "activity=probe" in r["detail"]]
    rows = rows_of(run)
    assert [t for t, _ in probes] == [r.start_ns for r in rows]  # no contention: held as soon as asked
    assert all(f"end_ns={r.end_ns}" in detail for (_, detail), r in zip(probes, rows))
    states = [(r["t_ns"], r["detail"].split()[0]) for r in trace if r["scope"] == "chip.controller"
              and r["event"] == "StateChange"]
    assert states[:3] == [(1_000_000, "state=PROBE"), (1_000_000 + STEP_NS + PROBE_NS, "state=DECODE"),
                          (1_000_000 + STEP_NS + PROBE_NS, "state=PROBE")]


def test_a_device_read_within_tolerance_of_a_wrong_level_is_displaced_without_a_pulse():
    # 12.6 uS on a level-2 device (25 uS): the nearest decoder reads level 1, within 0.25 spacing of
    # it, so nothing is programmed, yet the firmware now holds the device at the wrong level
    run = tiny_chip()
    chip = run.chip

    def disturb():
        yield chip.env.timeout(500_000)
        chip.devices.g_prog[0] = 12.6

    chip.env.process(disturb())
    run.run()
    rows = [r for r in rows_of(run) if r.tile == 0]
    assert [r.partial_set + r.reset for r in rows] == [0, 0]
    assert [score(run, r) for r in rows] == [{"misread": 1, "displaced": 1}] * 2
    assert run.observers.scoring.displaced_now() == 1  # the summary agrees with the last campaign


def test_campaign_times_are_exact_to_the_nanosecond_at_ten_years():
    # a campaign at 9.5 y: its probe lasts exactly PROBE_NS; float seconds cannot say so
    from twin.report.records import campaign_rows
    year = 31_557_600 * 10**9
    interval = 19 * year // 2
    run = tiny_chip(interval_ns=interval, duration_ns=interval + 10**9, checkpoints=(interval + 10**9,))
    run.run()
    rows = campaign_rows(run)
    assert [r["end_ns"] - r["start_ns"] for r in rows] == [PROBE_NS, PROBE_NS]
    assert rows[0]["start_ns"] == interval + STEP_NS
    assert rows[0]["end_s"] - rows[0]["start_s"] != PROBE_NS / 1e9  # why the ns columns exist


def test_the_event_trace_is_bounded():
    from twin.chip.observers import EventTrace
    run = tiny_chip(trace=True)
    run.observers.trace.max_rows = 5
    run.run()
    trace: EventTrace = run.observers.trace
    assert len(trace.rows) == 5 and trace.dropped > 0
    full = tiny_chip(trace=True)
    full.run()
    assert len(full.observers.trace.rows) == 5 + trace.dropped
