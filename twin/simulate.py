"""``simulate(scenario) -> Result``: the Python entry point the CLI is built on."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
import yaml

from firmware_model.controller import Controller
from firmware_model.policies import make_policy
from twin.toolchain.readout import PeripheryConfig
from twin.atomic import atomic_write_text, prepare_output_dir
from twin.chip.chip import Chip, CountingEnvironment, firmware_config
from twin.toolchain.deploy import deploy_levels, layer_sensitivity
from twin.chip.ledger import ENERGY_COMPONENTS, CostModel
from twin.toolchain.mapping import TileGeometry
from twin.device.pcm import PCMParameters
from twin.device.program_verify import PulseParameters
from twin.scenario.policies import CustomPolicy, load_policy_class
from twin.scenario.schema import NetworkConfig, Scenario
from twin.toolchain.prepare import prepare_network
from twin.units import SECOND

__all__ = ["Result", "SCHEMA_VERSION", "OUTPUT_FILES", "build_chip", "simulate", "write_outputs", "ScenarioBuildError"]

SCHEMA_VERSION = 1
OUTPUT_FILES = ["summary.json", "scenario.resolved.yaml", "timeline.csv", "campaigns.csv", "device_pulses.csv"]


class ScenarioBuildError(ValueError):
    """The scenario is valid on its own but cannot be built (e.g. too few tiles); names the field."""


@dataclass
class Result:
    """The summary (summary.json) plus flat record tables (lists of dicts: ``pandas.DataFrame(rows)``)."""

    summary: dict
    timeline: list[dict]
    campaigns: list[dict]
    device_pulses: list[dict]

    def frames(self) -> dict:
        """The record tables as pandas DataFrames (needs pandas installed)."""
        import pandas as pd
        return {name: pd.DataFrame(getattr(self, name)) for name in ("timeline", "campaigns", "device_pulses")}


def cost_model(scenario: Scenario) -> CostModel:
    t, e = scenario.timing, scenario.energy
    return CostModel(
        read_cycle_ns=t.read_cycle, partial_set_ns=t.partial_set_pulse, reset_ns=t.reset_pulse,
        controller_step_ns=t.controller_step, mvm_ns=t.mvm, offchip_per_byte_ns=t.offchip_per_byte,
        read_per_device_j=e.read_per_device, partial_set_j=e.partial_set_pulse, reset_j=e.reset_pulse,
        mvm_j=e.mvm, offchip_per_byte_j=e.offchip_per_byte, controller_step_j=e.controller_step,
        static_power_w=e.static_power, channels=scenario.chip.pulse_generator.channels)


def pulse_parameters(scenario: Scenario) -> PulseParameters:
    p = scenario.chip.pulse_generator
    return PulseParameters(
        partial_set_step_mean_us=p.partial_set_step_mean_us, partial_set_step_std_us=p.partial_set_step_std_us,
        reset_g_mean_us=p.reset_g_mean_us, reset_g_std_us=p.reset_g_std_us,
        tolerance_abs_us=p.verify_tolerance_abs_us, tolerance_rel=p.verify_tolerance_rel,
        max_iterations=p.max_iterations)


def pcm_parameters(scenario: Scenario) -> PCMParameters:
    d = scenario.chip.device
    return PCMParameters(g_max_us=scenario.chip.g_max_us, t0_s=d.t0 / SECOND, t_read_s=d.t_read / SECOND,
                         prog_noise_scale=d.prog_noise_scale, read_noise_scale=d.read_noise_scale,
                         drift_scale=d.drift_scale)


_UNIT_FIELDS = {"interval": "interval_ns", "max_interval": "max_interval_ns"}
_CONTROLLER_FIELDS = {"name", "gdc", "decoder", "correction_tolerance", "max_retries", "order", "class_"}


def policy_parameters(policy) -> dict:
    """The policy's own parameters (without the controller's common ones), in firmware units."""
    params = {k: getattr(policy, k) for k in type(policy).model_fields if k not in _CONTROLLER_FIELDS}
    return {_UNIT_FIELDS.get(k, k): v for k, v in params.items()}


def make_firmware_policy(scenario: Scenario, tile_order: list[int] | None):
    """The firmware policy object a scenario's ``policy`` section describes."""
    policy = scenario.policy
    if isinstance(policy, CustomPolicy):
        cls = load_policy_class(policy.class_)
        try:
            return cls(**policy.params())
        except (TypeError, ValueError) as exc:
            raise ScenarioBuildError(f"policy.class: {policy.class_}(**{policy.params()}) failed: {exc}") from None
    params = policy_parameters(policy)
    if policy.name not in ("none", "gdc"):
        params["tile_order"] = tile_order
    return make_policy(policy.name, **params)


def sensitivity_order(deployment, model, x, y, seed: int) -> list[int]:
    """Tiles of the most accuracy-sensitive layers first (offline measurement, stored as configuration)."""
    loss = layer_sensitivity(model, x, y, seed=seed)
    layers = sorted(deployment.mapping.layers.values(), key=lambda layer: -loss[layer.name])
    return [tile for layer in layers for tile in layer.tiles]


def network_config(scenario: Scenario) -> tuple[NetworkConfig, int]:
    """The network a scenario deploys and the seed of its data, training and quantization
    (the ``hybrid`` policy deploys the HWA-trained network)."""
    network_cfg = scenario.network
    if scenario.policy.name == "hybrid" and not network_cfg.hwa:
        network_cfg = network_cfg.model_copy(update={"hwa": True})
    return network_cfg, scenario.seed if network_cfg.seed is None else network_cfg.seed


def build_chip(scenario: Scenario, progress: Callable[[int], None] | None = None) -> Chip:
    chip_cfg = scenario.chip
    network_cfg, network_seed = network_config(scenario)
    network = prepare_network(network_cfg, chip_cfg.levels, network_seed, scenario.evaluation.test_images)
    geometry = TileGeometry(chip_cfg.rows, chip_cfg.cols, chip_cfg.reference_cells)
    deployment = deploy_levels(network.model, network.quant, geometry, pcm_parameters(scenario))
    needed = deployment.mapping.n_tiles
    if chip_cfg.tiles != "auto" and chip_cfg.tiles < needed:
        raise ScenarioBuildError(f"chip.tiles: the network needs {needed} tiles of {chip_cfg.rows} x "
                                 f"{chip_cfg.cols}, the chip has {chip_cfg.tiles}")
    order = None
    if scenario.policy.order == "sensitivity":
        order = sensitivity_order(deployment, network.model, network.x_test, network.y_test, network_seed)
    policy = make_firmware_policy(scenario, order)
    controller = Controller(firmware_config(deployment), policy, scenario.policy.decoder,
                            scenario.policy.correction_tolerance, scenario.policy.max_retries)
    chip = Chip(CountingEnvironment(), deployment, controller, cost_model(scenario), pulse_parameters(scenario),
                scenario.seed, network.x_test, network.y_test, scenario.checkpoint_times_ns(), scenario.duration,
                gdc=scenario.policy.gdc, accuracy_samples=scenario.evaluation.accuracy_samples,
                periphery=PeripheryConfig(enabled=scenario.evaluation.periphery),
                granularity=scenario.simulation.granularity, progress=progress,
                digital_accuracy=network.digital_accuracy)
    return chip


def versions() -> dict:
    out = {}
    for name, dist in (("pcm-twin", "pcm-twin"), ("torch", "torch"), ("aihwkit", "aihwkit"),
                       ("numpy", "numpy"), ("simpy", "simpy")):
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                           cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def simulate(scenario: Scenario, progress: Callable[[int], None] | None = None) -> Result:
    """Build the chip for ``scenario``, run the whole deployment, return the results."""
    started = time.perf_counter()
    chip = build_chip(scenario, progress)
    chip.run()
    return collect(scenario, chip, time.perf_counter() - started)


def collect(scenario: Scenario, chip: Chip, wall_s: float) -> Result:
    ledger = chip.ledger
    energy_j = ledger.energy()  # the components and their fsum
    counts = ledger.counts
    timeline = [{"t_s": c.t_ns / SECOND, "accuracy": c.accuracy, "accuracy_std": c.accuracy_std,
                 "campaigns": c.campaigns, "pulses": c.pulses, "energy_j": c.energy_j} for c in chip.checkpoints]
    campaigns = []
    for r in chip.campaign_records:
        row = {"campaign": r.campaign, "tile": r.tile, "start_s": r.start_ns / SECOND, "end_s": r.end_ns / SECOND,
               "reads": r.reads, "partial_set": r.partial_set, "reset": r.reset, "corrected": r.corrected,
               "devices_corrected": r.devices_corrected, "decode_errors": r.decode_errors,
               "drift_metric": r.drift_metric}
        row.update({f"energy_{c}_j": r.energy.get(c, 0.0) for c in ENERGY_COMPONENTS if c != "static"})
        campaigns.append(row)
    mapping = chip.deployment.mapping
    g = mapping.geometry
    maintenance = chip.pulse_generator.pulse_count
    initial = chip.pulse_generator.initial_pulse_count
    pulsed = torch.nonzero((maintenance + initial) > 0).flatten()
    device_pulses = []
    for d in pulsed.tolist():
        tile, rest = divmod(d, g.devices_per_tile)
        sign, cell = divmod(rest, g.rows * g.cols)
        device_pulses.append({"tile": tile, "array": "G+" if sign == 0 else "G-", "row": cell // g.cols,
                              "col": cell % g.cols, "initial_pulses": int(initial[d]),
                              "maintenance_pulses": int(maintenance[d])})
    summary = {
        "schema_version": SCHEMA_VERSION,
        "scenario": {"name": scenario.name, "sha256": scenario.sha256()},
        "seed": scenario.seed,
        "policy": scenario.resolved_dict()["policy"],
        "duration_s": scenario.duration / SECOND,
        "digital_accuracy": chip.digital_accuracy,
        "accuracy": [{k: row[k] for k in ("t_s", "accuracy", "accuracy_std")} for row in timeline],
        "energy_j": energy_j,
        "pulses": {"total": counts["partial_set"] + counts["reset"], "partial_set": counts["partial_set"],
                   "reset": counts["reset"], "max_per_device": int(maintenance.max()) if maintenance.numel() else 0},
        "initial_programming": {"duration_s": chip.deployed_at_ns / SECOND,
                                "energy_j": energy_j["initial_programming"],
                                "partial_set": counts["initial_partial_set"], "reset": counts["initial_reset"]},
        "reads": {"probe_rows": counts["probe_row_reads"], "verify_rows": counts["verify_row_reads"]},
        "controller_steps": counts["controller_steps"],
        "campaigns": chip.campaigns,
        "decode_errors": int(sum(r.decode_errors for r in chip.campaign_records)),
        "faulty_devices": int(sum(len(v) for v in chip.controller.faulty.values())),
        "availability": chip.availability(),
        "longest_unavailability_s": chip.longest_unavailability_ns() / SECOND,
        "chip": {"tiles": mapping.n_tiles, "rows": g.rows, "cols": g.cols, "devices": mapping.n_devices,
                 "used_devices": int(chip.used.numel())},
        "events": chip.env.events_processed,
        "versions": versions(),
        "wall_s": round(wall_s, 3),
    }
    return Result(summary, timeline, campaigns, device_pulses)


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_outputs(result: Result, scenario: Scenario, out_dir: Path, force: bool = False,
                  per_device_pulses: bool = True) -> Path:
    """Write every output atomically; refuse to overwrite earlier results unless ``force``."""
    out_dir = prepare_output_dir(Path(out_dir), OUTPUT_FILES, force)
    atomic_write_text(out_dir / "scenario.resolved.yaml",
                      yaml.safe_dump(scenario.resolved_dict(), sort_keys=False))
    atomic_write_text(out_dir / "timeline.csv", _csv(result.timeline))
    atomic_write_text(out_dir / "campaigns.csv", _csv(result.campaigns))
    if per_device_pulses:
        atomic_write_text(out_dir / "device_pulses.csv", _csv(result.device_pulses))
    # summary last: its presence marks a complete result folder
    atomic_write_text(out_dir / "summary.json", json.dumps(result.summary, indent=2, sort_keys=True) + "\n")
    return out_dir
