"""chip.fill: synthetic (every weight cell of every tile holds a weight, the network's where it
sits, elsewhere (k+, k-) pairs drawn from its own pair histogram), and outputs that stay
proportionate on a full chip (device_pulses_histogram.csv above DEVICE_ROWS_MAX pulsed devices)."""

import json

import numpy as np
import pytest
import torch

from tiny_chip import random_digits_checkpoint
from twin.chip.events import Checkpoint
from twin.report import records
from twin.report.records import collect, device_pulse_tables
from twin.scenario.build import build
from twin.scenario.loader import ScenarioError
from twin.scenario.schema import Scenario
from twin.simulate import simulate, write_outputs
from twin.toolchain.mapping import ChipMapping, reference_levels, synthetic_fill
from twin.toolchain.readout import read_used, readback_weights
from twin.toolchain.specs import TileGeometry

LEVELS = 8


def network_levels(mapping: ChipMapping, seed: int = 0) -> np.ndarray:
    """A network's device levels with a lopsided pair histogram (mostly one device at 0, as the
    quantizer leaves them), references at their levels."""
    rng = np.random.default_rng(seed)
    layers = {}
    for name, layer in mapping.layers.items():
        magnitude = np.minimum(rng.geometric(0.35, layer.matrix_shape) - 1, LEVELS).astype(np.int16)
        negative = rng.random(layer.matrix_shape) < 0.4
        both = rng.random(layer.matrix_shape) < 0.1  # a few pairs with both devices above 0
        k_plus = np.where(negative, 0, magnitude) + both
        k_minus = np.where(negative, magnitude, 0) + both
        layers[name] = (np.minimum(k_plus, LEVELS).reshape(layer.weight_shape),
                        np.minimum(k_minus, LEVELS).reshape(layer.weight_shape))
    return mapping.device_levels(layers)


def pairs_of(levels: np.ndarray, pos: np.ndarray, cells_per_array: int) -> np.ndarray:
    return levels[pos].astype(np.int64) * (LEVELS + 1) + levels[pos + cells_per_array]


@pytest.mark.parametrize("geometry, tiles", [(TileGeometry(16, 12, 5), 7), (TileGeometry(8, 8, 8), 9),
                                             (TileGeometry(32, 32, 0), 4)])
def test_synthetic_fill_puts_a_weight_on_every_weight_cell_of_every_tile(geometry, tiles):
    mapping = ChipMapping({"a": (5, 20), "b": (3, 7)}, geometry, LEVELS)
    real = network_levels(mapping)
    fill = synthetic_fill(mapping, real, tiles, np.random.default_rng(1))
    g = geometry
    by_tile = fill.levels.reshape(tiles, 2, g.rows, g.cols)
    weight = fill.weight.reshape(tiles, 2, g.rows, g.cols)
    assert weight[:, :, :g.weight_rows, :].all() and not weight[:, :, g.weight_rows:, :].any()
    assert fill.levels.size == tiles * g.devices_per_tile
    # the network where the mapping put it, untouched; synthetic everywhere else on the weight rows
    assert np.array_equal(fill.levels[:mapping.n_devices][mapping.weight_mask()], real[mapping.weight_mask()])
    assert np.array_equal(fill.synthetic, fill.weight & ~np.pad(mapping.weight_mask(),
                                                                (0, fill.levels.size - mapping.n_devices)))
    assert fill.synthetic.sum() == 2 * (tiles * g.weight_rows * g.cols - mapping.weight_mask().sum() // 2)
    # reference cells on every tile at their known levels, on both arrays; nothing else programmed
    reference = fill.reference
    assert reference.sum() == tiles * 2 * g.reference_cells
    ref_levels = np.tile(reference_levels(g.reference_cells, LEVELS), 2 * tiles)
    assert np.array_equal(fill.levels[reference], ref_levels)
    assert not fill.levels[~(fill.weight | reference)].any()
    assert np.array_equal(fill.used(), np.flatnonzero(fill.weight | reference))
    assert by_tile.dtype == np.int16
    for t in range(tiles):
        assert np.array_equal(fill.weight_cells(t), weight[t, 0])


def test_synthetic_levels_follow_the_network_pair_histogram():
    geometry = TileGeometry(64, 64, 64)
    mapping = ChipMapping({"a": (40, 60), "b": (24, 63)}, geometry, LEVELS)
    real = network_levels(mapping, seed=3)
    fill = synthetic_fill(mapping, real, 40, np.random.default_rng(7))
    cells = geometry.rows * geometry.cols
    real_pos = np.concatenate([layer.device_pos.ravel() for layer in mapping.layers.values()])
    synthetic_pos = np.flatnonzero(fill.synthetic)
    synthetic_pos = synthetic_pos[(synthetic_pos % geometry.devices_per_tile) < cells]  # one per cell: its G+
    network = np.bincount(pairs_of(real, real_pos, cells), minlength=(LEVELS + 1) ** 2)
    drawn = np.bincount(pairs_of(fill.levels, synthetic_pos, cells), minlength=(LEVELS + 1) ** 2)
    assert drawn.sum() > 150_000 and drawn.sum() == synthetic_pos.size
    # never a pair the network does not have; chi-square against the network's frequencies
    assert not drawn[network == 0].any()
    expected = network / network.sum() * drawn.sum()
    seen = network > 0
    chi2 = (((drawn - expected) ** 2)[seen] / expected[seen]).sum()
    dof = int(seen.sum()) - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)  # about 5 sigma of the chi-square
    # neither constant nor all zero: the device levels and signed levels spread as the network's
    assert (np.unique(fill.levels[synthetic_pos]).size > 3 and fill.levels[fill.synthetic].mean() > 0.5)
    signed_real = real[real_pos].astype(int) - real[real_pos + cells]
    signed_drawn = fill.levels[synthetic_pos].astype(int) - fill.levels[synthetic_pos + cells]
    assert abs(signed_drawn.mean() - signed_real.mean()) < 0.02 and abs(signed_drawn.std() - signed_real.std()) < 0.02


def test_same_generator_same_fill_other_seed_other_fill_and_a_constant_network_is_refused():
    mapping = ChipMapping({"a": (5, 20)}, TileGeometry(16, 16, 16), LEVELS)
    real = network_levels(mapping)
    a, b, c = (synthetic_fill(mapping, real, 5, np.random.default_rng(seed)) for seed in (4, 4, 5))
    assert np.array_equal(a.levels, b.levels) and not np.array_equal(a.levels, c.levels)
    constant = real.copy()
    constant[mapping.weight_mask()] = 3
    with pytest.raises(ValueError, match="constant"):
        synthetic_fill(mapping, constant, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="tiles"):
        synthetic_fill(mapping, real, 0, np.random.default_rng(0))


# --- whole runs ----------------------------------------------------------------------------------
SHORT = ["duration=2 d", "policy.name=periodic", "policy.interval=1 d", "checkpoints=[1 h, 2 d]",
         "evaluation.accuracy_samples=2", "evaluation.test_images=16", "network.sa_iterations=20",
         "network.sa_restarts=0", "outputs.progress=false", "chip.rows=32", "chip.cols=32",
         "chip.reference_cells=16"]
TILES = 8  # the digits CNN takes 6 tiles of 32 x 32 (16 reference cells)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    path = random_digits_checkpoint(tmp_path_factory.mktemp("fill"))
    return Scenario(name="fill").with_overrides(SHORT + [f"network.checkpoint={path}", f"chip.tiles={TILES}"])


@pytest.fixture(scope="module")
def synthetic_run(untrained):
    assembly = build(untrained.with_overrides(["chip.fill=synthetic"]))
    assembly.run()
    return assembly


def without_wall(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "wall_s"}


def test_fill_network_is_the_default_and_changes_no_byte(untrained, tmp_path):
    untrained = untrained.with_overrides(["duration=25 h", "checkpoints=[25 h]", "evaluation.accuracy_samples=1"])
    explicit = untrained.with_overrides(["chip.fill=network"])
    assert untrained.chip.fill == "network" and "fill" not in untrained.resolved_dict()["chip"]
    assert explicit.sha256() == untrained.sha256() and explicit.resolved_dict() == untrained.resolved_dict()
    synthetic = untrained.with_overrides(["chip.fill=synthetic"])
    assert synthetic.sha256() != untrained.sha256() and synthetic.resolved_dict()["chip"]["fill"] == "synthetic"
    a, b = (write_outputs(simulate(s), s, tmp_path / name) for s, name in ((untrained, "a"), (explicit, "b")))
    for name in ("campaigns.csv", "timeline.csv", "device_pulses.csv", "scenario.resolved.yaml"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    summary = json.loads((a / "summary.json").read_text())
    assert without_wall(summary) == without_wall(json.loads((b / "summary.json").read_text()))
    assert summary["chip"]["mapped_tiles"] == 6 and "synthetic_devices" not in summary["chip"]
    assert not (a / "device_pulses_histogram.csv").exists() and "device_pulse_histogram" not in summary


def test_synthetic_devices_are_programmed_corrected_and_scored_like_the_network(synthetic_run):
    chip, obs = synthetic_run.chip, synthetic_run.observers
    summary = collect(synthetic_run, 0.0).summary
    g = 32 * 32
    assert summary["chip"]["mapped_tiles"] == TILES and chip.layout.mapped_tiles == TILES
    weights = TILES * 2 * 31 * 32  # every weight row (16 reference cells take one row) of every tile
    assert summary["chip"]["weight_devices"] == weights == obs.scoring.weight_devices
    assert summary["chip"]["network_weight_devices"] == 2 * (8 * 9 + 12 * 72 + 10 * 48)
    assert summary["chip"]["synthetic_devices"] == weights - summary["chip"]["network_weight_devices"]
    assert summary["chip"]["used_devices"] == weights + TILES * 2 * 16
    # the firmware holds every weight cell of every tile as a weight: it cannot tell which are synthetic
    assert all(layout.weight_cells[:31].all() and not layout.weight_cells[31:].any()
               for layout in chip.controller.config.tiles)
    assert len(chip.controller.config.tiles) == TILES
    # every used device programmed at deployment; the campaign probed every tile; synthetic devices
    # were corrected (maintenance pulses) and misread like the network's, on the spare tiles too
    used = obs.scoring.used_devices
    assert (obs.wear.initial[used] > 0).all()
    assert {row.tile for row in obs.campaigns.ordered()} == set(range(TILES))
    spare = np.arange(6 * 2 * g, TILES * 2 * g)
    assert obs.wear.maintenance[spare].sum() > 0
    assert sum(score["misread"] for (_, tile), score in obs.scoring.scores.items() if tile >= 6) > 0
    assert summary["misreads"] == sum(score["misread"] for score in obs.scoring.scores.values())


def test_accuracy_reads_the_network_alone(untrained):
    """Wrecking every synthetic device changes nothing the accuracy observer sees; wrecking the
    network's devices does."""
    assembly = build(untrained.with_overrides(["chip.fill=synthetic"]))
    chip, accuracy = assembly.chip, assembly.observers.accuracy
    chip.start()
    chip.env.run(until=10**9)  # deployed (well under a second), no campaign yet
    assert chip.deployed_at_ns > 0 and chip.campaigns == 0
    fill_mask = np.zeros(chip.devices.size, dtype=bool)
    fill_mask[np.flatnonzero(assembly.observers.scoring._is_weight)] = True
    network = accuracy.readout.mapping.weight_mask()
    synthetic = torch.from_numpy(np.flatnonzero(fill_mask & ~np.pad(network, (0, fill_mask.size - network.size))))
    assert synthetic.numel() == assembly.synthetic_devices

    def measure():
        state = accuracy.generator.get_state()
        accuracy._measure(Checkpoint(10**9, "chip"))  # what a checkpoint records
        accuracy.generator.set_state(state)
        g_read = read_used(accuracy.readout, 10**9, torch.Generator().manual_seed(0), accuracy.used,
                           devices=chip.devices)  # what it reads: the network's devices
        weights = readback_weights(accuracy.readout, g_read[:accuracy.readout.mapping.n_devices], accuracy.gdc)
        return accuracy.rows.pop(), weights

    row, weights = measure()
    chip.devices.g_prog[synthetic] = 1e3 * chip.devices.g_max_us  # every synthetic device wrecked
    chip.devices.nu[synthetic] = 0.5
    wrecked_row, wrecked_weights = measure()
    assert (wrecked_row.accuracy, wrecked_row.accuracy_std) == (row.accuracy, row.accuracy_std)
    assert all(torch.equal(weights[k], wrecked_weights[k]) for k in weights)
    real = torch.from_numpy(np.flatnonzero(network))
    chip.devices.g_prog[real] = chip.devices.g_max_us  # the network's own devices wrecked: it shows
    _, network_wrecked = measure()
    assert not all(torch.equal(weights[k], network_wrecked[k]) for k in weights)


def test_large_runs_write_a_pulse_histogram_instead_of_a_row_per_device(synthetic_run, monkeypatch, tmp_path):
    wear = synthetic_run.observers.wear
    pulsed = np.flatnonzero(wear.initial + wear.maintenance)
    rows, histogram = device_pulse_tables(synthetic_run)
    assert histogram is None and len(rows) == pulsed.size  # under DEVICE_ROWS_MAX: a row per device
    rows, histogram = device_pulse_tables(synthetic_run, max_rows=pulsed.size - 1)
    assert rows is None
    assert [r["pulses"] for r in histogram] == sorted({r["pulses"] for r in histogram})
    assert sum(r["initial_devices"] for r in histogram) == sum(r["maintenance_devices"] for r in histogram) \
        == pulsed.size
    assert sum(r["pulses"] * r["initial_devices"] for r in histogram) == wear.initial.sum()
    assert sum(r["pulses"] * r["maintenance_devices"] for r in histogram) == wear.maintenance.sum()
    assert all(r["initial_devices"] or r["maintenance_devices"] for r in histogram)

    monkeypatch.setattr(records, "DEVICE_ROWS_MAX", pulsed.size - 1)  # the one threshold
    result = collect(synthetic_run, 0.0)
    assert result.device_pulses is None and result.device_pulse_histogram == histogram
    assert result.summary["device_pulse_histogram"] == {"devices": int(pulsed.size), "rows": len(histogram)}
    out = write_outputs(result, synthetic_run.scenario, tmp_path / "run")
    assert not (out / "device_pulses.csv").exists()
    lines = (out / "device_pulses_histogram.csv").read_text().splitlines()
    assert lines[0] == "pulses,initial_devices,maintenance_devices" and len(lines) == len(histogram) + 1
    quiet = synthetic_run.scenario.with_overrides(["outputs.per_device_pulses=false"])
    out = write_outputs(result, quiet, tmp_path / "quiet")
    assert not (out / "device_pulses_histogram.csv").exists() and not (out / "device_pulses.csv").exists()


@pytest.mark.parametrize("override, field", [
    (["traffic.rate=1000 /s"], "chip.fill"),
    (["chip.fill=everything"], "chip.fill"),
    (["chip.tiles=20000", "chip.rows=256", "chip.cols=256"], "chip.tiles"),
])
def test_bad_fills_name_the_field(untrained, override, field):
    with pytest.raises(ScenarioError) as caught:
        untrained.with_overrides(["chip.fill=synthetic", *override])
    assert field in [path for path, _ in caught.value.errors]
