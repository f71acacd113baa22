"""Each policy's schedule on the tiny noiseless chip: when it probes, when it pulses."""

from pathlib import Path

import pytest

from firmware_model.policies import DriftAware, FullRefresh, GdcOnly, NoCorrection, Periodic, Threshold, make_policy
from tiny_chip import tiny_chip

MS = 1_000_000
DISTURBED = 0  # tile 0, G+ row 0, col 0: level 2 (25 uS)


def _disturb(chip, at_ns=500_000, value=8.0):
    def process():
        yield chip.env.timeout(at_ns)
        chip.deployment.devices.g_prog[DISTURBED] = value
    chip.env.process(process())


def _starts(chip):
    return sorted({r.start_ns for r in chip.campaign_records if r.tile == 0})


def test_none_never_probes_or_pulses():
    chip = tiny_chip(policy=NoCorrection(), duration_ns=5 * MS, checkpoints=(4 * MS,))
    _disturb(chip)
    chip.run()
    assert chip.campaign_records == [] and chip.ledger.counts["partial_set"] == chip.ledger.counts["reset"] == 0
    assert chip.ledger.counts["probe_row_reads"] == 0


def test_gdc_reads_references_but_never_pulses():
    chip = tiny_chip(policy=GdcOnly(), gdc=True, duration_ns=5 * MS, checkpoints=(1 * MS, 4 * MS))
    _disturb(chip)
    chip.run()
    counts = chip.ledger.counts
    assert counts["partial_set"] == counts["reset"] == 0 and chip.campaign_records == []
    assert counts["probe_row_reads"] == 2 * 2 * 2  # 2 checkpoints x 2 tiles x (1 reference row x 2 arrays)


def test_periodic_probes_every_interval_and_pulses_only_off_level_devices():
    chip = tiny_chip(policy=Periodic(MS), duration_ns=3_500_000, checkpoints=(3 * MS,))
    _disturb(chip)
    chip.run()
    assert _starts(chip) == [1 * MS + 1000, 2 * MS + 1000, 3 * MS + 1000]
    pulsed = [r.partial_set + r.reset for r in chip.campaign_records]
    assert pulsed == [3, 0, 0, 0, 0, 0]  # only the disturbed device, only once


def test_threshold_probes_on_schedule_but_corrects_only_above_threshold():
    quiet = tiny_chip(policy=Threshold(MS, threshold=0.05), duration_ns=3_500_000, checkpoints=(3 * MS,))
    quiet.run()
    assert len(_starts(quiet)) == 3 and quiet.ledger.counts["partial_set"] == 0
    assert all(not r.corrected for r in quiet.campaign_records)
    # one device 4.5 uS (0.36 spacing) off among the 12 non-zero weight devices: metric 0.03 on tile 0
    disturbed = tiny_chip(policy=Threshold(MS, threshold=0.02), duration_ns=3_500_000, checkpoints=(3 * MS,))
    _disturb(disturbed)
    disturbed.run()
    assert disturbed.campaign_records[0].corrected and disturbed.campaign_records[0].partial_set == 2
    assert disturbed.campaign_records[0].drift_metric == pytest.approx(4.5 / 12.5 / 12)
    assert not disturbed.campaign_records[1].corrected  # tile 1 did not move


def test_drift_aware_intervals_grow_geometrically():
    chip = tiny_chip(policy=DriftAware(MS, growth=2.0, max_interval_ns=4 * MS), duration_ns=20 * MS,
                     checkpoints=(19 * MS,))
    chip.run()
    # campaigns at 1, 1+2, 3+4, 7+4 (capped), 11+4, 15+4 ms
    assert _starts(chip) == [t * MS + 1000 for t in (1, 3, 7, 11, 15, 19)]


def test_full_refresh_pays_for_the_offchip_copy_and_restores_the_true_level():
    chip = tiny_chip(policy=FullRefresh(MS, bytes_per_weight=1), duration_ns=1_500_000, checkpoints=(1_400_000,))
    _disturb(chip)
    chip.run()
    assert chip.ledger.counts["offchip_bytes"] == 2 * 12  # 12 weight cells per tile, both tiles
    assert float(chip.deployment.devices.g_prog[DISTURBED]) == 25.0  # the true level 2, not the decoded 1
    assert sum(r.decode_errors for r in chip.campaign_records) == 0


def test_offchip_reads_are_refused_to_policies_that_do_not_declare_them():
    sneaky = FullRefresh(MS)
    sneaky.uses_offchip = False  # the controller would not ask, so force the command by hand
    chip = tiny_chip(policy=sneaky, duration_ns=1_500_000, checkpoints=(1_400_000,))
    from firmware_model.interface import OffchipRead
    chip.controller.step = lambda now, obs: OffchipRead(0, 12)
    chip.start()
    with pytest.raises(RuntimeError, match="did not declare off-chip reads"):
        chip.env.run(until=1_500_000)


def test_make_policy_rejects_unknown_names_and_bad_parameters():
    with pytest.raises(ValueError, match="known"):
        make_policy("sometimes")
    with pytest.raises(ValueError, match="interval"):
        make_policy("periodic", interval_ns=0)
    with pytest.raises(ValueError, match="growth"):
        make_policy("drift_aware", interval_ns=1, growth=0.5)


def test_user_policy_class_from_the_docs_runs(tmp_path, monkeypatch):
    from twin.scenario.schema import load_scenario
    from twin.simulate import simulate
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "docs" / "examples"))
    scenario = load_scenario("scenarios/default.yaml", [
        "duration=20 d", "checkpoints.count=3", "evaluation.accuracy_samples=1", "network.sa_iterations=200",
        "network.sa_restarts=2", "policy={class: 'weekly_policy:WeekdayCampaigns', every_days: 7, skip_first: 1}"])
    summary = simulate(scenario).summary
    assert summary["campaigns"] == 1  # day 14 only: day 7 skipped, day 21 past the end
    assert summary["pulses"]["total"] > 0


def test_user_policy_errors_name_the_field():
    from twin.scenario.schema import ScenarioError, load_scenario
    with pytest.raises(ScenarioError, match="policy"):
        load_scenario("scenarios/default.yaml", ["policy={class: 'no_such_module:Policy'}"])


def test_sensitivity_order_visits_the_most_sensitive_layers_first():
    from twin.toolchain.deploy import layer_sensitivity
    from twin.scenario.schema import load_scenario
    from twin.simulate import build_chip
    scenario = load_scenario("scenarios/default.yaml", ["network.sa_iterations=200", "network.sa_restarts=2",
                                                        "policy.order=sensitivity"])
    chip = build_chip(scenario)
    order = chip.controller.policy.tiles(0, len(chip.tiles))
    assert sorted(order) == list(range(len(chip.tiles)))
    loss = layer_sensitivity(chip.deployment.model, chip.x_test, chip.y_test, seed=scenario.seed)
    layers = chip.deployment.mapping.layers
    tile_loss = [next(loss[name] for name, layer in layers.items() if tile in layer.tiles) for tile in order]
    assert tile_loss == sorted(tile_loss, reverse=True) and tile_loss[0] > tile_loss[-1]
