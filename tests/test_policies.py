"""Each policy's schedule on the tiny noiseless chip: when it probes, when it pulses."""

import json
from pathlib import Path

import pytest

from firmware_model.policies import DriftAware, FullRefresh, GdcOnly, NoCorrection, Periodic, Threshold, make_policy
from tiny_chip import tiny_chip

MS = 1_000_000
DISTURBED = 0  # tile 0, G+ row 0, col 0: level 2 (25 uS)


def _disturb(run, at_ns=500_000, value=8.0):
    def process():
        yield run.chip.env.timeout(at_ns)
        run.chip.devices.g_prog[DISTURBED] = value
    run.chip.env.process(process())


def _starts(run):
    return sorted({r.start_ns for r in _rows(run) if r.tile == 0})


def _rows(run):
    return run.observers.campaigns.ordered()


def _counts(run):
    return run.observers.ledger.counts


def test_none_never_probes_or_pulses():
    run = tiny_chip(policy=NoCorrection(), duration_ns=5 * MS, checkpoints=(4 * MS,))
    _disturb(run)
    run.run()
    assert _rows(run) == [] and _counts(run)["partial_set"] == _counts(run)["reset"] == 0
    assert _counts(run)["probe_row_reads"] == 0


def test_gdc_reads_references_but_never_pulses():
    run = tiny_chip(policy=GdcOnly(), gdc=True, duration_ns=5 * MS, checkpoints=(1 * MS, 4 * MS))
    _disturb(run)
    run.run()
    counts = _counts(run)
    assert counts["partial_set"] == counts["reset"] == 0 and _rows(run) == []
    assert counts["probe_row_reads"] == 2 * 2 * 2  # 2 checkpoints x 2 tiles x (1 reference row x 2 arrays)


def test_periodic_probes_every_interval_and_pulses_only_off_level_devices():
    run = tiny_chip(policy=Periodic(MS), duration_ns=3_500_000, checkpoints=(3 * MS,))
    _disturb(run)
    run.run()
    assert _starts(run) == [1 * MS + 1000, 2 * MS + 1000, 3 * MS + 1000]
    pulsed = [r.partial_set + r.reset for r in _rows(run)]
    assert pulsed == [3, 0, 0, 0, 0, 0]  # only the disturbed device, only once


def test_threshold_probes_on_schedule_but_corrects_only_above_threshold():
    quiet = tiny_chip(policy=Threshold(MS, threshold=0.05), duration_ns=3_500_000, checkpoints=(3 * MS,))
    quiet.run()
    assert len(_starts(quiet)) == 3 and _counts(quiet)["partial_set"] == 0
    assert all(not r.corrected for r in _rows(quiet))
    # one device 4.5 uS (0.36 spacing) off among the 12 non-zero weight devices: metric 0.03 on tile 0
    disturbed = tiny_chip(policy=Threshold(MS, threshold=0.02), duration_ns=3_500_000, checkpoints=(3 * MS,))
    _disturb(disturbed)
    disturbed.run()
    rows = _rows(disturbed)
    assert rows[0].corrected and rows[0].partial_set == 2
    assert rows[0].drift_metric == pytest.approx(4.5 / 12.5 / 12)
    assert not rows[1].corrected  # tile 1 did not move


def test_drift_aware_intervals_grow_geometrically():
    run = tiny_chip(policy=DriftAware(MS, growth=2.0, max_interval=4 * MS), duration_ns=20 * MS,
                    checkpoints=(19 * MS,))
    run.run()
    # campaigns at 1, 1+2, 3+4, 7+4 (capped), 11+4, 15+4 ms
    assert _starts(run) == [t * MS + 1000 for t in (1, 3, 7, 11, 15, 19)]


def test_full_refresh_pays_for_the_offchip_copy_and_restores_the_true_level():
    run = tiny_chip(policy=FullRefresh(MS, bytes_per_weight=1), duration_ns=1_500_000, checkpoints=(1_400_000,))
    _disturb(run)
    run.run()
    assert _counts(run)["offchip_bytes"] == 2 * 12  # 12 weight cells per tile, both tiles
    assert float(run.chip.devices.g_prog[DISTURBED]) == 25.0  # the true level 2, not the decoded 1
    scoring = run.observers.scoring
    assert scoring.misreads() == 1 and scoring.displaced_now() == 0  # misread, but held to the off-chip level
    # each tile's transfer is charged to that tile's row (free on the tiny chip: 0 J per byte)
    assert [(r.tile, "offchip" in r.energy) for r in _rows(run)] == [(0, True), (1, True)]


def test_offchip_reads_are_refused_to_policies_that_do_not_declare_them():
    sneaky = FullRefresh(MS)
    sneaky.uses_offchip = False  # the controller would not ask, so force the command by hand
    chip = tiny_chip(policy=sneaky, duration_ns=1_500_000, checkpoints=(1_400_000,)).chip
    from firmware_model.interface import OffchipRead
    chip.controller.step = lambda now, obs: OffchipRead(0, 12)
    chip.start()
    with pytest.raises(RuntimeError, match="did not declare off-chip reads"):
        chip.env.run(until=1_500_000)


def test_make_policy_rejects_unknown_names_and_bad_parameters():
    with pytest.raises(ValueError, match="known"):
        make_policy("sometimes")
    with pytest.raises(ValueError, match="interval"):
        make_policy("periodic", interval=0)
    with pytest.raises(ValueError, match="growth"):
        make_policy("drift_aware", interval=1, growth=0.5)


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
    # reported under the class's own name, and the resolved scenario writes `class` as the docs do
    assert summary["policy"]["name"] == "weekday_campaigns"
    assert summary["policy"]["class"] == "weekly_policy:WeekdayCampaigns" and "class_" not in summary["policy"]
    resolved = scenario.resolved_dict()["policy"]
    assert resolved == summary["policy"] and load_scenario_dict(resolved).policy == scenario.policy


def load_scenario_dict(policy: dict):
    from twin.scenario.schema import Scenario
    return Scenario(name="x").with_overrides([f"policy={json.dumps(policy)}"])  # JSON is YAML (null for None)


@pytest.mark.parametrize("section,field,message", [
    ("{class: 'no_such_module:Policy'}", "policy.class", "cannot import module 'no_such_module'"),
    ("{class: 'firmware_model.policies:Periodic', bogus: 5}", "policy.class", "unexpected keyword argument 'bogus'"),
    ("{class: 'firmware_model.policies:NoCorrection', order: sensitivity}", "policy.order", "tile_order"),
    ("{name: drift_aware, interval: 1 h, max_interval: 1 s}", "policy.max_interval", "must be >= interval"),
])
def test_policy_errors_name_the_field_at_validate_time(section, field, message):
    from twin.scenario.schema import ScenarioError, load_scenario
    with pytest.raises(ScenarioError) as info:
        load_scenario("scenarios/default.yaml", [f"policy={section}"])
    errors = dict(info.value.errors)
    assert message in errors[field], errors


def test_sensitivity_order_visits_the_most_sensitive_layers_first():
    from twin.scenario.build import build, network_spec
    from twin.scenario.schema import load_scenario
    from twin.toolchain.deploy import layer_sensitivity
    from twin.toolchain.prepare import prepare_network
    scenario = load_scenario("scenarios/default.yaml", ["network.sa_iterations=200", "network.sa_restarts=2",
                                                        "policy.order=sensitivity"])
    run = build(scenario)
    order = run.chip.controller.policy.tiles(0, run.chip.layout.mapped_tiles)
    assert sorted(order) == list(range(run.chip.layout.mapped_tiles))
    spec, seed = network_spec(scenario)
    network = prepare_network(spec, scenario.chip.levels, seed)
    loss = layer_sensitivity(network.model, network.x_test, network.y_test, seed=scenario.seed)
    tiles = {"conv1": (0,), "conv2": (1,), "fc": (2,)}  # one tile per layer on 256 x 256 tiles
    tile_loss = [next(loss[name] for name, ts in tiles.items() if tile in ts) for tile in order]
    assert tile_loss == sorted(tile_loss, reverse=True) and tile_loss[0] > tile_loss[-1]


BAD_POLICIES = '''
from firmware_model.policies import Periodic


class NegativeTile(Periodic):
    def tiles(self, now_ns, n_tiles):
        return [-1]


class SaysNo(Periodic):
    def should_correct(self, tile, decoded):
        return "no"


class StringTime(Periodic):
    def next_campaign(self, now_ns):
        return "tomorrow"
'''


@pytest.mark.parametrize("cls, method", [("NegativeTile", "tiles"), ("SaysNo", "should_correct"),
                                         ("StringTime", "next_campaign")])
def test_a_policy_that_returns_nonsense_stops_the_run_naming_the_method(tmp_path, monkeypatch, capsys, cls, method):
    """tiles() returning -1 used to probe the last tile, "no" read as true: checked at the boundary."""
    from twin.cli import main
    (tmp_path / "bad_policies.py").write_text(BAD_POLICIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["run", "scenarios/default.yaml", "--out", str(tmp_path / "out"), "--quiet",
                 "--set", "duration=2 d", "--set", "checkpoints.count=1", "--set", "evaluation.accuracy_samples=1",
                 "--set", "network.sa_iterations=200", "--set", "network.sa_restarts=2",
                 "--set", f"policy={{class: 'bad_policies:{cls}'}}"])  # Periodic: daily
    err = capsys.readouterr().err
    assert code == 2 and f"policy.{method}" in err and "Traceback" not in err, err


def test_a_policy_module_that_fails_at_import_is_reported_at_validate_time(tmp_path, monkeypatch):
    from twin.scenario.schema import ScenarioError, load_scenario
    (tmp_path / "broken_policy.py").write_text("raise RuntimeError('no licence server')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ScenarioError) as info:
        load_scenario("scenarios/default.yaml", ["policy={class: 'broken_policy:Anything'}"])
    assert "RuntimeError: no licence server" in dict(info.value.errors)["policy.class"]
