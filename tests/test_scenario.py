"""Scenario files: schema, defaults, units, errors, overrides, alias bombs, round trips."""

import gzip
import json
import struct
import pickle
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from twin.units import format_energy, format_power, parse_energy, parse_power
from twin.scenario.schema import (MNIST_FILES, CheckpointsConfig, NonePolicy, PeriodicPolicy, Scenario,
                           ScenarioError, ThresholdPolicy, explain, load_scenario)
from twin.units import DAY, HOUR, MONTH, SECOND, YEAR, parse_duration

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(tmp_path: Path, text: str, overrides=()) -> dict[str, str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text), overrides)
    return dict(info.value.errors)


def tiny_idx(name: str) -> bytes:
    """A valid IDX file of one image (28 x 28) or one label, the shape its MNIST name implies."""
    shape = (1, 28, 28) if "images" in name else (1,)
    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    return header + bytes(int(np.prod(shape)))


def mnist_folder(tmp_path: Path, skip: str | None = None, garbage: str | None = None) -> Path:
    folder = tmp_path / "mnist"
    folder.mkdir(parents=True)
    for i, name in enumerate(MNIST_FILES):
        if name != skip:
            data = b"not an IDX file" if name == garbage else tiny_idx(name)
            (folder / (name + ".gz" if i % 2 else name)).write_bytes(gzip.compress(data) if i % 2 else data)
    return folder  # raw and .gz both count


# ---- shipped scenarios -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["default", "no_correction", "paper_threshold"])
def test_shipped_scenarios_load(name):
    s = load_scenario(SCENARIOS / f"{name}.yaml")
    assert s.name == name
    assert s.duration == YEAR
    assert s.network.architecture == "digits_cnn" and s.network.dataset == "digits"
    assert s.description


def test_shipped_policies():
    default = load_scenario(SCENARIOS / "default.yaml")
    assert default.policy == PeriodicPolicy(interval=DAY, gdc=True, decoder="drift_aware")
    assert default.checkpoints == CheckpointsConfig(count=40, spacing="log")
    assert load_scenario(SCENARIOS / "no_correction.yaml").policy == NonePolicy(gdc=False)
    paper = load_scenario(SCENARIOS / "paper_threshold.yaml").policy
    assert paper == ThresholdPolicy(threshold=0.05, decoder="nearest", interval=DAY, gdc=False)


def test_paper_mnist_needs_data_and_says_how(tmp_path):
    (tmp_path / "scenarios").mkdir()  # a copy, so a real ../data/mnist next to the repo cannot interfere
    copy = shutil.copy(SCENARIOS / "paper_mnist.yaml", tmp_path / "scenarios" / "paper_mnist.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(copy)
    errors = dict(info.value.errors)
    assert list(errors) == ["network.data_path"]
    message = errors["network.data_path"]
    assert "--set network.data_path=" in message and str(tmp_path / "data" / "mnist") in message
    assert all(name in message for name in MNIST_FILES)

    folder = mnist_folder(tmp_path)
    s = load_scenario(copy, [f"network.data_path={folder}"])
    assert s.network.data_path == folder and s.network.architecture == "paper_mnist_cnn"
    assert isinstance(s.policy, ThresholdPolicy) and s.policy.threshold == 0.05


def test_paper_mnist_relative_data_path_from_file_folder(tmp_path):
    (tmp_path / "scenarios").mkdir()
    copy = shutil.copy(SCENARIOS / "paper_mnist.yaml", tmp_path / "scenarios" / "paper_mnist.yaml")
    (tmp_path / "data").mkdir()
    shutil.move(mnist_folder(tmp_path), tmp_path / "data" / "mnist")
    assert load_scenario(copy).network.data_path == tmp_path / "data" / "mnist"


def test_a_garbage_mnist_file_is_found_at_validate_time(tmp_path):
    folder = mnist_folder(tmp_path, garbage="t10k-images-idx3-ubyte")
    errors = errors_of(tmp_path, f"network: {{architecture: paper_mnist_cnn, dataset: mnist, data_path: {folder}}}\n")
    assert "t10k-images-idx3-ubyte" in errors["network.data_path"] and "IDX" in errors["network.data_path"]


def test_mnist_missing_file_named(tmp_path):
    folder = mnist_folder(tmp_path, skip="t10k-labels-idx1-ubyte")
    errors = errors_of(tmp_path, f"network: {{architecture: paper_mnist_cnn, dataset: mnist, data_path: {folder}}}\n")
    assert str(folder / "t10k-labels-idx1-ubyte") in errors["network.data_path"]


def test_override_path_is_relative_to_cwd(tmp_path, monkeypatch):
    mnist_folder(tmp_path)
    scenario_dir = tmp_path / "elsewhere"
    scenario_dir.mkdir()
    monkeypatch.chdir(tmp_path)
    path = write(scenario_dir, "network: {architecture: paper_mnist_cnn, dataset: mnist}\n")
    assert load_scenario(path, ["network.data_path=mnist"]).network.data_path == tmp_path / "mnist"


def test_network_consistency_and_checkpoint(tmp_path):
    assert "network.architecture" in errors_of(tmp_path, "network: {architecture: paper_mnist_cnn}\n")
    assert "network.architecture" in errors_of(tmp_path, "network: {dataset: mnist}\n")
    errors = errors_of(tmp_path, "network: {checkpoint: weights.pt}\n")
    assert str(tmp_path / "weights.pt") in errors["network.checkpoint"]
    (tmp_path / "weights.pt").write_bytes(b"x")  # garbage is found at validate time, not at run time
    assert "torch.save" in errors_of(tmp_path, "network: {checkpoint: weights.pt}\n")["network.checkpoint"]
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pt")
    assert load_scenario(tmp_path / "s.yaml").network.checkpoint == tmp_path / "weights.pt"


def test_mnist_files_match_data_module():
    from twin.toolchain.data import MNIST_FILES as DATA_FILES
    assert MNIST_FILES == DATA_FILES


# ---- defaults and units ----------------------------------------------------------------------

def test_defaults_match_documented_values():
    d = Scenario(name="x").resolved_dict()
    assert d["schema_version"] == 1 and d["seed"] == 0 and d["duration"] == "1 y" and d["description"] == ""
    assert d["chip"] | {"device": None, "pulse_generator": None} == {
        "tiles": "auto", "rows": 256, "cols": 256, "levels": 8, "encoding": "levels", "g_max_us": 25.0,
        "reference_cells": 64, "digital_lanes": 256, "device": None, "pulse_generator": None}
    assert d["chip"]["device"] == {"prog_noise_scale": 1.0, "read_noise_scale": 1.0, "drift_scale": 1.0,
                                   "t0": "20 s", "t_read": "250 ns", "read_noise_model": "correlated"}
    assert d["chip"]["pulse_generator"] == {
        "channels": 16, "partial_set_step_mean_us": 3.0, "partial_set_step_std_us": 1.2, "reset_g_mean_us": 0.0,
        "reset_g_std_us": 0.26348, "verify_tolerance_abs_us": 0.4, "verify_tolerance_rel": 0.045,
        "max_iterations": 100, "verify_reads": 1, "partial_set_step_mode": "fixed", "adaptive_step_gain": 0.5,
        "adaptive_step_min_us": 0.1}
    assert d["timing"] == {"read_cycle": "100 ns", "partial_set_pulse": "150 ns", "reset_pulse": "40 ns",
                           "controller_step": "1 us", "mvm": "133 ns", "digital_op": "1 ns",
                           "offchip_per_byte": "1 ns"}
    assert d["energy"] == {"read_per_device": "2 pJ", "partial_set_pulse": "5 pJ", "reset_pulse": "16.82 pJ",
                           "mvm": "13.4 nJ", "digital_op": "100 fJ", "offchip_per_byte": "160 pJ",
                           "controller_step": "10 pJ",
                           "static_power": "1 mW"}
    assert d["network"] == {"architecture": "digits_cnn", "dataset": "digits", "data_path": None,
                            "checkpoint": None, "hwa": False, "epochs": None, "sa_iterations": 1000,
                            "sa_restarts": 39, "seed": None}
    assert d["policy"] == {"name": "periodic", "interval": "1 d", "gdc": True, "decoder": "drift_aware",
                           "correction_tolerance": 0.25, "max_retries": 1, "defer_queue": None,
                           "max_defer": "1 h", "defer_recheck": "1 ms", "order": "index"}
    assert d["checkpoints"] == {"count": 40, "spacing": "log", "start": "1 s"}
    assert d["evaluation"] == {"accuracy_samples": 5, "periphery": False, "test_images": None}
    assert d["simulation"] == {"granularity": "campaign"}
    assert d["outputs"] == {"per_device_pulses": True, "progress": True, "trace": False}


def test_defaults_are_numbers_in_base_units():
    s = Scenario(name="x")
    assert s.duration == YEAR and s.chip.device.t0 == 20 * SECOND and s.chip.device.t_read == 250
    assert s.timing.controller_step == 1000 and s.timing.partial_set_pulse == 150
    assert s.energy.reset_pulse == pytest.approx(16.82e-12) and s.energy.read_per_device == pytest.approx(2e-12)
    assert s.energy.static_power == pytest.approx(1e-3)


def test_policy_defaults_per_kind():
    assert (NonePolicy().gdc, NonePolicy().decoder) == (False, "drift_aware")
    assert (PeriodicPolicy().gdc, PeriodicPolicy().decoder, PeriodicPolicy().interval) == (True, "drift_aware", DAY)
    t = ThresholdPolicy()
    assert (t.gdc, t.decoder, t.interval, t.threshold) == (False, "nearest", DAY, 0.05)
    assert all(p.correction_tolerance == 0.25 and p.max_retries == 1 for p in (NonePolicy(), t))


def test_durations_parse(tmp_path):
    assert 12 * parse_duration("1 mo") == parse_duration("1 y") == YEAR
    s = load_scenario(write(tmp_path, "duration: 12 mo\npolicy: {name: periodic, interval: 36 h}\n"))
    assert s.duration == YEAR and s.policy.interval == 36 * HOUR
    assert s.resolved_dict()["duration"] == "1 y" and s.resolved_dict()["policy"]["interval"] == "1.5 d"
    odd = load_scenario(write(tmp_path, "duration: 123456789012345 ns\n")).resolved_dict()["duration"]
    assert parse_duration(odd) == 123456789012345


@pytest.mark.parametrize("text, joules", [("2 pJ", 2e-12), ("16.8 pJ", 16.8e-12), ("1 nJ", 1e-9),
                                          ("3 fJ", 3e-15), ("1.5 uJ", 1.5e-6), ("1.5 µJ", 1.5e-6),
                                          ("2 mJ", 2e-3), ("1 J", 1.0), ("0.5 nJ", 5e-10)])
def test_energy_units(text, joules):
    assert parse_energy(text) == pytest.approx(joules, rel=1e-15)
    assert parse_energy(format_energy(parse_energy(text))) == parse_energy(text)


def test_energy_and_power_labels():
    assert format_energy(16.82e-12) == "16.82 pJ" and format_energy(5e-10) == "500 pJ"
    assert format_energy(1e-9) == "1 nJ" and format_energy(0.0) == "0 J"
    assert parse_power("250 uW") == pytest.approx(2.5e-4) and format_power(parse_power("1 mW")) == "1 mW"


def test_bare_numbers_need_units(tmp_path):
    errors = errors_of(tmp_path, "duration: 5\nenergy: {mvm: 100}\ntiming: {mvm: 1.5}\n")
    assert "unit" in errors["duration"] and "unit" in errors["energy.mvm"] and "unit" in errors["timing.mvm"]
    errors = errors_of(tmp_path, "energy: {mvm: 100 pW}\nduration: 1 fortnight\n")
    assert "pJ" in errors["energy.mvm"] and "unknown time unit" in errors["duration"]


# ---- errors ----------------------------------------------------------------------------------

def test_unknown_key_rejected_with_path(tmp_path):
    errors = errors_of(tmp_path, "chip:\n  rowz: 3\n  device: {drift_scael: 2}\nextra: 1\n")
    assert errors == {"chip.rowz": "Extra inputs are not permitted; did you mean 'rows'?",
                      "chip.device.drift_scael": "Extra inputs are not permitted; did you mean 'drift_scale'?",
                      "extra": "Extra inputs are not permitted"}  # nothing close: no suggestion
    error = ScenarioError(list(errors.items()))
    assert "chip.rowz: Extra inputs are not permitted; did you mean 'rows'?" in str(error).splitlines()
    assert pickle.loads(pickle.dumps(error)).errors == error.errors


def test_wrong_type_rejected_with_path(tmp_path):
    errors = errors_of(tmp_path, "chip: {rows: many, tiles: some}\nseed: -1\nnetwork: {hwa: maybe}\n")
    assert set(errors) == {"chip.rows", "chip.tiles", "seed", "network.hwa"}
    assert "integer" in errors["chip.rows"] and "'auto'" in errors["chip.tiles"]


def test_range_checks(tmp_path):
    errors = errors_of(tmp_path, "duration: 0 s\nchip: {levels: 0, reference_cells: 65536}\n"
                                 "evaluation: {accuracy_samples: 0}\nschema_version: 2\n")
    assert set(errors) == {"duration", "chip.levels", "evaluation.accuracy_samples", "schema_version"}
    assert load_scenario(write(tmp_path, "chip: {reference_cells: 65280}\n")).chip.reference_cells == 65280
    assert "chip.reference_cells" in errors_of(tmp_path, "chip: {reference_cells: 65281}\n")  # 256 rows


def test_policy_errors_name_the_field(tmp_path):
    errors = errors_of(tmp_path, "policy: {name: periodic, interval: 5}\n")
    assert list(errors) == ["policy.interval"]
    errors = errors_of(tmp_path, "policy: {name: threshold, threshold: 0, correction_tolerance: 0.6, foo: 1}\n")
    assert set(errors) == {"policy.threshold", "policy.correction_tolerance", "policy.foo"}
    assert errors_of(tmp_path, "policy: {name: none, interval: 1 d}\n") == {
        "policy.interval": "Extra inputs are not permitted"}
    assert load_scenario(write(tmp_path, "policy: {interval: 2 d}\n")).policy == PeriodicPolicy(interval=2 * DAY)


def test_bad_policy_name_lists_valid_names(tmp_path):
    message = errors_of(tmp_path, "policy: {name: sometimes}\n")["policy"]
    assert all(f"'{name}'" in message for name in ("none", "periodic", "threshold"))


def test_yaml_syntax_error_reports_line(tmp_path):
    errors = errors_of(tmp_path, "name: a\nchip:\n  rows: 3\n   cols: [4\n")
    (where, message), = errors.items()
    assert where == str(tmp_path / "s.yaml") and "line 4" in message


def test_duplicate_key_refused(tmp_path):
    (message,) = errors_of(tmp_path, "name: a\nseed: 1\nseed: 2\n").values()
    assert "duplicate key 'seed'" in message and "line 3" in message


BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))


def test_alias_bomb_refused_fast(tmp_path):
    assert BOMB.count("*") == 72  # 9 levels of 9 aliases: 9^9 "lol"s if expanded
    tracemalloc.start()
    message = errors_of(tmp_path, BOMB)[str(tmp_path / "s.yaml")]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "anchors" in message and "line 1" in message
    assert peak < 5_000_000  # refused before anything expanded (no timing assertion: a shared machine)


def test_simple_anchor_and_alias_refused(tmp_path):
    assert "anchors" in str(errors_of(tmp_path, "name: &n a\ndescription: *n\n"))
    assert "aliases" in str(errors_of(tmp_path, "policy:\n  name: none\ndescription: *undefined\n"))
    assert "anchors" in str(errors_of(tmp_path, "duration: 1 y\n", ["description=&x a"]))


def test_file_and_top_level_errors(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "missing.yaml")
    assert info.value.errors[0][0] == str(tmp_path / "missing.yaml")
    assert "mapping" in str(errors_of(tmp_path, "- a\n- b\n"))
    assert "mapping" in str(errors_of(tmp_path, ""))


# ---- overrides -------------------------------------------------------------------------------

def test_overrides_types(tmp_path):
    path = write(tmp_path, "name: base\nchip: {levels: 8}\n")
    s = load_scenario(path, ["chip.levels=4", "policy.gdc=false", 'duration="2 y"', "timing.mvm=200 ns",
                             "energy.mvm=1 nJ", "chip.device.drift_scale=0.5", "checkpoints=[1 h, 1 d]"])
    assert s.chip.levels == 4 and s.policy.gdc is False and s.duration == 2 * YEAR
    assert s.timing.mvm == 200 and s.energy.mvm == pytest.approx(1e-9) and s.chip.device.drift_scale == 0.5
    assert s.checkpoint_times_ns() == [HOUR, DAY] and s.name == "base"


def test_override_errors(tmp_path):
    path = write(tmp_path, "chip: {levels: 8}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, ["chip.levels"])
    assert "chip.levels" in info.value.errors[0][0] and "key.path=value" in info.value.errors[0][1]
    assert errors_of(tmp_path, "chip: {levels: 8}\n", ["chip.newthing.deep=1"]) == {
        "chip.newthing": "Extra inputs are not permitted"}
    assert "chip.levels" in errors_of(tmp_path, "chip: {levels: 8}\n", ["chip.levels=four"])
    (where, _), = errors_of(tmp_path, "chip: {levels: 8}\n", ["chip.levels.x=1"]).items()
    assert "chip.levels.x=1" in where


def test_override_switching_policy_starts_from_its_defaults():
    s = load_scenario(SCENARIOS / "default.yaml", ["policy.interval=2 d", "policy.name=threshold"])
    assert s.policy == ThresholdPolicy(interval=2 * DAY)
    assert load_scenario(SCENARIOS / "default.yaml", ["policy.name=none"]).policy == NonePolicy()


def test_with_overrides():
    base = load_scenario(SCENARIOS / "default.yaml")
    changed = base.with_overrides(["chip.levels=4", "policy.name=none"])
    assert changed.chip.levels == 4 and changed.policy == NonePolicy() and base.chip.levels == 8
    assert base.with_overrides([]) == base
    with pytest.raises(ScenarioError):
        base.with_overrides(["chip.levels=0"])


# ---- round trips -----------------------------------------------------------------------------

def test_resolved_dict_round_trip_and_sha(tmp_path):
    odd = write(tmp_path, "seed: 3\nduration: 7 mo\nchip: {tiles: 12, levels: 4}\n"
                          "energy: {mvm: 0.1234 nJ, static_power: 250 uW}\ncheckpoints: [1 min, 3 d, 2 h]\n"
                          "policy: {name: threshold, interval: 90 min, threshold: 0.1}\n", "odd.yaml")
    for s in [load_scenario(SCENARIOS / f"{n}.yaml") for n in ("default", "no_correction", "paper_threshold")] \
            + [load_scenario(odd)]:
        d = s.resolved_dict()
        assert json.loads(json.dumps(d)) == d
        assert Scenario.model_validate(d) == s
        again = load_scenario(write(tmp_path, yaml.safe_dump(d, sort_keys=False), "resolved.yaml"))
        assert again == s and again.sha256() == s.sha256()
    a = load_scenario(SCENARIOS / "default.yaml")
    assert a.sha256() == load_scenario(SCENARIOS / "default.yaml").sha256() and len(a.sha256()) == 64
    assert a.with_overrides(["seed=1"]).sha256() != a.sha256()


# ---- checkpoints -----------------------------------------------------------------------------

def test_checkpoint_times_log():
    times = Scenario(name="x").checkpoint_times_ns()
    assert len(times) == 40 and times[0] == SECOND and times[-1] == YEAR
    ratios = [b / a for a, b in zip(times, times[1:])]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-6)
    few = Scenario(name="x", duration="10 ns", checkpoints={"count": 40, "start": "1 ns"}).checkpoint_times_ns()
    assert few == sorted(set(few)) and few[0] == 1 and few[-1] == 10 and len(few) <= 10


def test_checkpoint_times_linear_list_and_single():
    lin = Scenario(name="x", duration="4 h", checkpoints={"count": 4, "spacing": "linear"})
    assert lin.checkpoint_times_ns() == [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR]
    listed = Scenario(name="x", duration="1 y", checkpoints=["1 mo", "1 s", "1 mo", "1 y"])
    assert listed.checkpoint_times_ns() == [SECOND, MONTH, YEAR]
    assert Scenario(name="x", checkpoints={"count": 1}).checkpoint_times_ns() == [YEAR]


def test_checkpoints_beyond_duration(tmp_path):
    errors = errors_of(tmp_path, "duration: 1 d\ncheckpoints: [1 h, 2 d]\n")
    assert list(errors) == ["checkpoints"] and "2 d" in errors["checkpoints"]
    assert "checkpoints.start" in errors_of(tmp_path, "duration: 1 h\ncheckpoints: {start: 1 d}\n")
    assert "checkpoints.1" in errors_of(tmp_path, "checkpoints: [1 h, 5]\n")


def test_explain_summarises():
    text = explain(load_scenario(SCENARIOS / "paper_threshold.yaml"))
    for needle in ("paper_threshold", "digits_cnn", "1 y", "threshold every 1 d", "0.05", "nearest",
                   "256x256", "K = 8", "40"):
        assert needle in text


def test_python_code_may_pass_base_unit_numbers(tmp_path):
    s = Scenario(name="x", duration=DAY, energy={"mvm": 2e-10}, checkpoints=[HOUR])
    assert s.duration == DAY and s.energy.mvm == 2e-10 and s.resolved_dict()["energy"]["mvm"] == "200 pJ"
    assert s.with_overrides(["seed=2"]).duration == DAY  # re-validated from unit strings
    assert "duration" in errors_of(tmp_path, f"duration: {DAY}\n")  # files always need units


def test_docs_full_example_loads(tmp_path):
    docs = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text()
    example = docs.split("## Full example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    s = load_scenario(write(tmp_path, example))
    assert s.name == "example" and s.chip.levels == 4 and s.policy.interval == 12 * HOUR
    assert len(s.checkpoint_times_ns()) == 7 and s.network.hwa and s.evaluation.test_images == 200


def test_every_section_builds_its_runtime_dataclass_with_the_same_defaults():
    """One definition of every default: each section's defaults are its dataclass's own."""
    from firmware_model.controller import Controller
    from firmware_model.policies import DriftAware, FullRefresh, Periodic, Threshold
    from twin.chip.parameters import ChipSpec, EnergyCosts, PulseChannels, TimingCosts
    from twin.device.parameters import PCMParameters, PulseParameters
    from twin.scenario.build import cost_model, make_firmware_policy
    from twin.scenario.derive import exposed_fields, runtime
    from twin.scenario.schema import Scenario
    from twin.toolchain.specs import NetworkSpec, TileGeometry
    s = Scenario(name="x")
    assert runtime(PulseParameters, s.chip.pulse_generator) == PulseParameters()
    assert runtime(PCMParameters, s.chip.device) == PCMParameters()
    assert runtime(PulseChannels, s.chip.pulse_generator) == PulseChannels()
    assert runtime(ChipSpec, s.chip) == ChipSpec() and runtime(TileGeometry, s.chip) == TileGeometry()
    assert runtime(NetworkSpec, s.network) == NetworkSpec()
    assert cost_model(s).timing == TimingCosts() and cost_model(s).energy == EnergyCosts()
    for name, cls in (("periodic", Periodic), ("threshold", Threshold), ("drift_aware", DriftAware),
                      ("full_refresh", FullRefresh)):
        policy = make_firmware_policy(s.with_overrides([f"policy.name={name}"]), None)
        assert policy == cls(), name
        assert set(exposed_fields(cls)) <= set(type(s.with_overrides([f"policy.name={name}"]).policy).model_fields)
    for name in ("decoder", "correction_tolerance", "max_retries"):
        assert getattr(s.policy, name) == Controller.__dataclass_fields__[name].default


def test_a_dataclass_check_is_reported_at_validate_time_against_its_field(tmp_path):
    # PulseParameters refuses a zero verify band; the schema reports it under the field it names
    errors = errors_of(tmp_path, "chip:\n  pulse_generator:\n    verify_tolerance_abs_us: 0.0\n"
                                 "    verify_tolerance_rel: 0.0\n")
    assert "chip.pulse_generator.verify_tolerance_abs_us" in errors


def test_fewer_tiles_than_the_network_needs_is_refused_at_validate_time(tmp_path):
    errors = errors_of(tmp_path, "chip:\n  tiles: 2\n")
    assert "needs 3 tiles" in errors["chip.tiles"]
    assert load_scenario(write(tmp_path, "chip:\n  tiles: 16\n")).chip.tiles == 16  # spare tiles are fine


def test_crossbar_shapes_known_to_the_schema_match_the_networks():
    from twin.toolchain.networks import build_network, crossbar_layers
    from twin.toolchain.specs import CROSSBAR_SHAPES
    for architecture, shapes in CROSSBAR_SHAPES.items():
        actual = {name: (layer.weight.shape[0], layer.weight[0].numel())
                  for name, layer in crossbar_layers(build_network(architecture))}
        assert actual == shapes, architecture


@pytest.mark.parametrize("policy", ["none", "gdc", "periodic", "threshold", "drift_aware", "full_refresh", "hybrid",
                                    "{class: 'firmware_model.policies:Periodic'}"])
def test_scenarios_pickle_for_worker_processes(policy):
    """`twin compare` sends scenarios to spawned workers: every derived section must pickle."""
    import pickle
    override = f"policy={policy}" if policy.startswith("{") else f"policy.name={policy}"
    scenario = Scenario(name="x").with_overrides([override, "chip.tiles=4"])
    assert pickle.loads(pickle.dumps(scenario)) == scenario


def test_a_misspelt_key_gets_the_closest_key_of_its_own_section(tmp_path):
    """The suggestion comes from the section the key is in: the policy the name selects, not
    every policy (``none`` has no ``interval`` to suggest)."""
    assert errors_of(tmp_path, "policy: {name: threshold, threshhold: 0.3}\n") == {
        "policy.threshhold": "Extra inputs are not permitted; did you mean 'threshold'?"}
    assert errors_of(tmp_path, "policy: {name: none, intervl: 1 d}\n") == {
        "policy.intervl": "Extra inputs are not permitted"}
    assert errors_of(tmp_path, "checkpoints: {cout: 3}\n") == {
        "checkpoints.cout": "Extra inputs are not permitted; did you mean 'count'?"}


@pytest.mark.parametrize("text", ["300 y", "1e400 y", "1e999983 y", "1e999999 y"])
def test_every_duration_parser_stops_at_the_int64_clock(text):
    """One check in twin.units.parse_quantity serves scenario files, overrides and CLI flags, and
    decides on the decimal before it becomes a (possibly million-digit) integer."""
    from twin.units import MAX_DURATION_NS, parse_duration
    with pytest.raises(ValueError, match="292 y"):
        parse_duration(text)
    with pytest.raises(ValueError, match="int64"):
        parse_duration(MAX_DURATION_NS + 1)
    assert parse_duration(MAX_DURATION_NS) == MAX_DURATION_NS
