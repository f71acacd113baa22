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


def test_initial_programming_and_quiet_campaigns_exact():
    chip = tiny_chip()
    chip.run()
    assert chip.deployed_at_ns == 2 * TILE_PROGRAMMING_NS
    rows = [(r.campaign, r.tile, r.start_ns, r.end_ns) for r in chip.campaign_records]
    # A campaign: IDLE->PROBE (1 step), probe tile 0; DECODE, PROBE (2 steps), probe tile 1.
    first = 1_000_000 + STEP_NS
    second = first + PROBE_NS + 2 * STEP_NS
    assert rows == [(1, 0, first, first + PROBE_NS), (1, 1, second, second + PROBE_NS),
                    (2, 0, first + 1_000_000, first + 1_000_000 + PROBE_NS),
                    (2, 1, second + 1_000_000, second + 1_000_000 + PROBE_NS)]
    energy = chip.ledger.energy()
    assert energy["initial_programming"] == pytest.approx(2 * TILE_PROGRAMMING_J, rel=1e-12)
    assert energy["probe_read"] == pytest.approx(4 * PROBE_J, rel=1e-12)
    # per campaign: PROBE, DECODE+PROBE, DECODE+IDLE = 5 controller steps
    assert energy["controller"] == pytest.approx(10 * PJ, rel=1e-12)
    assert energy["partial_set"] == energy["reset"] == energy["verify_read"] == 0.0
    assert energy["static"] == pytest.approx(1e-3 * 2.5e-3, rel=1e-12)
    assert energy["total"] == math.fsum(energy[c] for c in ENERGY_COMPONENTS)
    busy = 2 * TILE_PROGRAMMING_NS + 4 * PROBE_NS
    assert chip.availability() == pytest.approx(1 - busy / 2_500_000, abs=1e-15)
    assert chip.campaigns == 2 and sum(r.decode_errors for r in chip.campaign_records) == 0


def test_disturbed_device_is_corrected_with_exact_cost():
    chip = tiny_chip()
    target = 0  # tile 0, G+ array, row 0, col 0: level 2 (25 uS)

    def disturb():
        yield chip.env.timeout(500_000)
        chip.deployment.devices.g_prog[target] = 8.0  # knocked down between levels 0 and 1

    chip.env.process(disturb())
    chip.run()
    record = chip.campaign_records[0]
    # Decoded as level 1 (nearest multiple of 12.5 uS), 4.5 uS off > 0.25 * 12.5: corrected to level 1.
    # DECODE, CORRECT: 2 steps; then P&V of the one device (not from RESET):
    #   round 1: read (8.0: out of band), partial-SET -> 20.5, read: 150 + 2 * 100 = 350 ns
    #   round 2: read above band -> RESET -> 0, read: 40 + 100 = 140 ns
    #   round 3: partial-SET -> 12.5, read: in band: 150 + 100 = 250 ns
    program_start = record.start_ns + PROBE_NS + 2 * STEP_NS
    assert record.end_ns == program_start + 350 + 140 + 250
    assert (record.partial_set, record.reset, record.devices_corrected) == (2, 1, 1)
    assert record.decode_errors == 1  # truly level 2: the firmware cannot know
    assert record.reads == 8 + 2 + 1 + 1
    assert record.energy["verify_read"] == pytest.approx(4 * 2 * PJ)
    assert record.energy["partial_set"] == pytest.approx(2 * 5 * PJ)
    assert record.energy["reset"] == pytest.approx(10 * PJ)
    # VERIFY, PROBE (2 steps) before tile 1 is probed
    assert chip.campaign_records[1].start_ns == record.end_ns + 2 * STEP_NS
    assert chip.deployment.devices.t_prog_ns[target] == record.end_ns  # drift age reset
    assert float(chip.deployment.devices.g_prog[target]) == 12.5
    # the next campaign finds nothing off its (wrong) level: the error is permanent
    assert chip.campaign_records[2].partial_set == 0 and chip.campaign_records[2].decode_errors == 1
    assert chip.pulse_generator.pulse_count[target] == 3 and int(chip.pulse_generator.pulse_count.sum()) == 3


def test_energy_is_conserved_across_records():
    chip = tiny_chip()
    chip.run()
    energy = chip.ledger.energy()
    in_records = math.fsum(v for r in chip.campaign_records for v in r.energy.values())
    outside = energy["initial_programming"] + energy["static"] + 2 * 1 * PJ  # the IDLE->PROBE step of each campaign
    assert in_records + outside == pytest.approx(energy["total"], rel=1e-12)


def test_pulse_mode_agrees_with_campaign_mode():
    from twin.device.pcm import PCMParameters
    from twin.device.program_verify import PulseParameters
    from twin.toolchain.mapping import TileGeometry
    from twin.toolchain.deploy import LayerQuantization
    from twin.toolchain.quantize import QuantSteps
    rng = np.random.default_rng(0)
    k_plus = rng.integers(0, 9, (4, 6)).astype(np.int16)
    k_minus = rng.integers(0, 9, (4, 6)).astype(np.int16)
    quant = {"fc": LayerQuantization(QuantSteps(0.1, 0.1, 8), k_plus, k_minus, report=None)}
    runs = {}
    for mode in ("campaign", "pulse"):
        chip = tiny_chip(pcm=PCMParameters(), pulses=PulseParameters(), decoder="drift_aware", levels=8,
                         quant=quant, granularity=mode, interval_ns=86_400 * 10**9, duration_ns=3 * 86_400 * 10**9,
                         checkpoints=(10**9,), geometry=TileGeometry(4, 4, 2))
        chip.run()
        runs[mode] = chip
    a, b = runs["campaign"], runs["pulse"]
    assert a.ledger.counts == b.ledger.counts  # same physics draws: identical pulses and reads
    assert a.ledger.energy() == b.ledger.energy()
    assert a.ledger.counts["partial_set"] > 10
    # durations: pulse mode packs RESETs and partial-SETs onto free channels, never slower
    for ra, rb in zip(a.campaign_records, b.campaign_records):
        da, db = ra.end_ns - ra.start_ns, rb.end_ns - rb.start_ns
        assert 0.9 * da <= db <= da
    assert 0.9 * a.deployed_at_ns <= b.deployed_at_ns <= a.deployed_at_ns
