"""Scenario files: one YAML file describes one experiment of the twin (see docs/scenarios.md).

Every number with a unit is written with its unit ("250 ns", "16.82 pJ", "1 mW") and held as
int nanoseconds, float joules or float watts (:mod:`twin.scenario.quantities`). Every default names its
published source or says "assumption" (the full table is in docs/scenarios.md). Loading refuses YAML
anchors and aliases (alias bombs), duplicate keys and unknown keys, and reports every problem as
``dotted.field.path: message`` in one :class:`ScenarioError`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag,
                      ValidationError, field_validator, model_validator)

from twin.chip.parameters import ChipSpec, EnergyCosts, PulseChannels, TimingCosts
from twin.device.parameters import PCMParameters, PulseParameters
from twin.scenario.derive import Int, field_error, section
from twin.scenario.quantities import UNITS_REQUIRED, Duration
from twin.toolchain.specs import ARCHITECTURE_DATASET, NetworkSpec, TileGeometry, tiles_needed
from twin.scenario.bounds import (MAX_CHECKPOINTS, MAX_DEVICES, MAX_DURATION, MAX_SEED, idx_problem,
                                  is_torch_archive, work_problem)
from twin.scenario.errors import scenario_error
from twin.scenario.loader import (ScenarioError, absolute_path, apply_overrides, parse_yaml,
                                  read_input_file)
from twin.scenario.policies import (ANALOG_POLICIES, POLICY_NAMES, CustomPolicy, NonePolicy, PeriodicPolicy, Policy,
                                   ThresholdPolicy)
from twin.scenario.traffic import TrafficConfig, check_traffic
from twin.scenario.faults import FaultsConfig, faults_line, faults_problem
from twin.scenario.outputs import OutputsConfig, vcd_problem
from twin.scenario.device import device_problem
from firmware_model.controller import MAX_DEFER_CHECKS
from twin.units import SECOND, YEAR, duration_label

__all__ = [
    "MNIST_FILES", "ScenarioError", "ChipConfig", "DeviceConfig", "PulseGeneratorConfig",
    "TimingConfig", "EnergyConfig", "NetworkConfig", "NonePolicy", "PeriodicPolicy",
    "ThresholdPolicy", "Policy", "POLICY_NAMES", "CheckpointsConfig", "EvaluationConfig",
    "SimulationConfig", "OutputsConfig", "Scenario", "load_scenario", "explain",
]

MNIST_FILES: tuple[str, ...] = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
"""Same names as ``twin.toolchain.data.MNIST_FILES`` (not imported from there: twin.toolchain.data pulls in torch)."""

_MNIST_HINT = (f"point it at a folder holding {', '.join(MNIST_FILES)} (raw or .gz), e.g. "
               "`twin run scenarios/paper_mnist.yaml --set network.data_path=/path/to/mnist`")

PositiveDuration = Annotated[Duration, Field(gt=0)]

class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FILL_SOURCE = ("network: the network's devices only, spare tiles idle; synthetic: every weight cell of every "
               "tile holds a weight, the network's where it sits, elsewhere (k+, k-) pairs drawn from its "
               "pair histogram")


def _tiles_in(value: Any) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError(f"must be 'auto' or a positive integer, got {value!r}")


DeviceConfig = section("DeviceConfig", PCMParameters, module=__name__,
                       doc="PCM statistics: scales on aihwkit's PCMLikeNoiseModel (all 1.0 = IBM's fitted model).")
PulseGeneratorConfig = section("PulseGeneratorConfig", PulseChannels, PulseParameters, module=__name__,
                               doc="The on-chip pulse generator used by program-and-verify.")
ChipConfig = section(
    "ChipConfig", ChipSpec, TileGeometry, module=__name__, doc="Tile geometry and the multi-level cell.",
    annotations={"tiles": Annotated[int | Literal["auto"], BeforeValidator(_tiles_in)]},
    extra={"device": (DeviceConfig, Field(default_factory=DeviceConfig)),
           "pulse_generator": (PulseGeneratorConfig, Field(default_factory=PulseGeneratorConfig)),
           # network: only the network's devices are used; synthetic: every weight cell of every tile
           # holds a weight, synthetic ones drawn from the network's (k+, k-) pair histogram (docs/scenarios.md)
           "fill": (Literal["network", "synthetic"], Field("network", description=FILL_SOURCE))},
    order=("tiles", "rows", "cols", "levels", "g_max_us", "reference_cells"))
TimingConfig = section("TimingConfig", TimingCosts, module=__name__)
EnergyConfig = section("EnergyConfig", EnergyCosts, module=__name__)
_NetworkBase = section("_NetworkBase", NetworkSpec, module=__name__)


class NetworkConfig(_NetworkBase):
    """The network a scenario deploys (fields and defaults: twin.toolchain.specs.NetworkSpec)."""

    @field_validator("data_path", "checkpoint")
    @classmethod
    def _absolute_path(cls, value: Path | None) -> Path | None:
        return None if value is None else absolute_path(value, Path.cwd())

    @model_validator(mode="after")
    def _consistent(self) -> NetworkConfig:
        needs = ARCHITECTURE_DATASET[self.architecture]
        if self.dataset != needs:
            raise field_error("architecture", f"{self.architecture} runs on dataset {needs!r}, "
                               f"not {self.dataset!r}")
        if self.dataset == "mnist":
            if self.data_path is None:
                raise field_error("data_path", f"dataset mnist needs data_path: {_MNIST_HINT}")
            if not self.data_path.is_dir():
                raise field_error("data_path", f"{self.data_path} does not exist or is not a folder; {_MNIST_HINT}")
            for name in MNIST_FILES:
                found = [self.data_path / f for f in (name, name + ".gz") if (self.data_path / f).is_file()]
                if not found:
                    raise field_error("data_path", f"missing {self.data_path / name} (or .gz); {_MNIST_HINT}")
                problem = idx_problem(found[0])  # a garbage file is found now, not in the run
                if problem:
                    raise field_error("data_path", problem)
        elif self.data_path is not None:
            raise field_error("data_path", "only used with dataset mnist (digits is bundled with scikit-learn)")
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise field_error("checkpoint", f"{self.checkpoint} does not exist (expected a torch state_dict file)")
        if self.checkpoint is not None and not is_torch_archive(self.checkpoint):
            raise field_error("checkpoint", f"{self.checkpoint} is not a file torch.save wrote (a zip archive holding "
                                            "data.pkl); save the network's state_dict with torch.save")
        return self


class CheckpointsConfig(_Config):
    count: Int = Field(40, ge=1, le=MAX_CHECKPOINTS)  # assumption
    spacing: Literal["log", "linear"] = "log"  # assumption: drift is logarithmic in time
    start: PositiveDuration = SECOND  # assumption; used by log spacing only


def _checkpoints_kind(value: Any) -> str:
    return "list" if isinstance(value, (list, tuple)) else "config"


Checkpoints = Annotated[Union[Annotated[CheckpointsConfig, Tag("config")],
                              Annotated[list[PositiveDuration], Field(min_length=1, max_length=MAX_CHECKPOINTS), Tag("list")]],
                        Discriminator(_checkpoints_kind)]


class EvaluationConfig(_Config):
    accuracy_samples: Int = Field(5, ge=1)  # assumption: read-noise draws per checkpoint
    periphery: bool = False  # assumption: ideal ADC/DAC periphery
    test_images: Int | None = Field(None, ge=1)  # None = the whole test split


class SimulationConfig(_Config):
    granularity: Literal["campaign", "round", "pulse"] = "campaign"  # campaign: a session per pass (docs/chip.md)
    # where device state, probes and accuracy evaluation run (torch); cuda needs a CUDA build of
    # torch and a GPU (docs/performance.md "cuda"); the same statistics, not the same bytes
    device: Literal["cpu", "cuda"] = "cpu"


class Scenario(_Config):
    schema_version: Literal[1] = 1
    name: str = Field(min_length=1)
    description: str = ""
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    duration: PositiveDuration = YEAR  # assumption: one year of deployment
    chip: ChipConfig = Field(default_factory=ChipConfig)
    timing: TimingConfig = Field(default_factory=TimingConfig)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    policy: Policy = Field(default_factory=PeriodicPolicy)
    checkpoints: Checkpoints = Field(default_factory=CheckpointsConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    traffic: TrafficConfig | None = None  # None: no inference traffic (maintenance only)
    faults: FaultsConfig | None = None  # None: nothing injected, and no key in the resolved scenario (its hash)

    @model_validator(mode="before")
    @classmethod
    def _policy_name_defaults_to_periodic(cls, data: Any) -> Any:
        policy = data.get("policy") if isinstance(data, dict) else None
        if isinstance(policy, dict) and "name" not in policy and "class" not in policy and "class_" not in policy:
            data = {**data, "policy": {"name": "periodic", **policy}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _analog_refresh_rounds_codes(cls, data: Any) -> Any:
        """With analog targets a read cannot be decoded to a level: full_refresh's decoder only
        rounds to the nearest target code (its codes come from the off-chip copy), and the copy
        holds a 16-bit code per weight: 2 bytes, unless the file says otherwise."""
        chip, policy = (data.get("chip"), data.get("policy")) if isinstance(data, dict) else (None, None)
        if isinstance(chip, dict) and chip.get("encoding") == "analog" and isinstance(policy, dict) \
                and policy.get("name") == "full_refresh":
            data = {**data, "policy": {"decoder": "nearest", "bytes_per_weight": 2, **policy}}
        return data

    @model_validator(mode="after")
    def _analog_needs_no_levels(self) -> Scenario:
        if self.chip.encoding != "analog":
            return self
        name = "a user policy class" if isinstance(self.policy, CustomPolicy) else f"policy {self.policy.name}"
        if isinstance(self.policy, CustomPolicy) or self.policy.name not in ANALOG_POLICIES:
            raise field_error("policy.name", f"{name} corrects devices to decoded levels, and chip.encoding: analog "
                              f"has none; with analog weights use {', '.join(ANALOG_POLICIES)} "
                              "(or chip.encoding: levels)")
        if self.policy.name == "full_refresh" and self.policy.decoder != "nearest":
            raise field_error("policy.decoder", "with chip.encoding: analog there are no levels to decode: the "
                              "decoder only rounds to the nearest target code; use nearest")
        return self

    @model_validator(mode="after")
    def _checkpoints_within_duration(self) -> Scenario:
        end = duration_label(self.duration)
        if self.duration > MAX_DURATION:
            raise field_error("duration", f"{end} is longer than the {duration_label(MAX_DURATION)} the twin "
                               "simulates (integer nanoseconds reach 292 y)")
        if isinstance(self.checkpoints, list):
            late = [duration_label(t) for t in self.checkpoints if t > self.duration]
            if late:
                raise field_error("checkpoints", f"{', '.join(late)} beyond the duration {end}")
        elif self.checkpoints.spacing == "log" and self.checkpoints.start > self.duration:
            raise field_error("checkpoints.start", f"{duration_label(self.checkpoints.start)} "
                               f"is beyond the duration {end}")
        return self

    @model_validator(mode="after")
    def _enough_tiles(self) -> Scenario:
        chip = self.chip
        geometry = TileGeometry(chip.rows, chip.cols, chip.reference_cells)
        needed = tiles_needed(self.network.architecture, geometry) * self.replicas
        tiles = needed if chip.tiles == "auto" else chip.tiles
        if tiles * geometry.devices_per_tile > MAX_DEVICES:
            raise field_error("chip.tiles", f"{tiles} tiles of {chip.rows} x {chip.cols} hold "
                               f"{tiles * geometry.devices_per_tile:,} devices, more than the {MAX_DEVICES:,} "
                               "the twin allows")
        if chip.tiles != "auto":
            if chip.tiles < needed:
                copies = f" ({self.replicas} replicas)" if self.replicas > 1 else ""
                raise field_error("chip.tiles", f"{self.network.architecture}{copies} needs {needed} tiles of "
                                   f"{chip.rows} x {chip.cols} ({chip.reference_cells} reference cells), "
                                   f"the chip has {chip.tiles}")
        return self

    @model_validator(mode="after")
    def _fill_without_traffic(self) -> Scenario:
        if self.chip.fill == "synthetic" and self.traffic is not None:
            raise field_error("chip.fill", "synthetic weights fill every tile around one copy of the network, "
                              "which a traffic section would serve in replicas: leave out traffic, or use fill: network")
        return self

    @model_validator(mode="after")
    def _device_runs_it(self) -> Scenario:
        problem = device_problem(self)
        if problem:
            raise field_error(*problem)
        return self

    @model_validator(mode="after")
    def _work_bounded(self) -> Scenario:
        """Refuse, at validate time, inputs that would run for days (twin.scenario.bounds)."""
        problem = work_problem(self)
        if problem:
            raise field_error(*problem)
        return self

    @model_validator(mode="after")
    def _faults_fit_the_chip(self) -> Scenario:
        problem = faults_problem(self)
        if problem:
            raise field_error(*problem)
        return self

    @model_validator(mode="after")
    def _waveform_window_in_run(self) -> Scenario:
        problem = vcd_problem(self)
        if problem:
            raise field_error(*problem)
        return self

    @property
    def replicas(self) -> int:
        return 1 if self.traffic is None else self.traffic.replicas

    @model_validator(mode="after")
    def _traffic_bounded(self) -> Scenario:
        if self.traffic is not None:
            check_traffic(self.traffic, self.duration)
            defer = getattr(self.policy, "defer_queue", None)
            if defer is not None and self.policy.max_defer // self.policy.defer_recheck > MAX_DEFER_CHECKS:
                raise field_error("policy.defer_recheck", f"max_defer / defer_recheck exceeds {MAX_DEFER_CHECKS:,} "
                                  "looks at the queue per deferred campaign; re-check less often")
            if defer is not None and self.traffic.windowed(self.duration):
                held = self.traffic.expected_requests(self.duration) * self.policy.max_defer / self.duration
                if held > self.traffic.windows.max_requests // 10:
                    raise field_error("policy.max_defer", f"a campaign deferred for {duration_label(self.policy.max_defer)} "
                                      f"keeps a window open over about {held:,.0f} requests, more than a tenth of "
                                      "traffic.windows.max_requests: shorten max_defer")
        return self

    def checkpoint_times_ns(self) -> list[int]:
        """Sorted unique evaluation times in (0, duration], int nanoseconds."""
        cp, end = self.checkpoints, self.duration
        if isinstance(cp, list):
            times = list(cp)
        elif cp.count == 1:
            times = [end]
        elif cp.spacing == "linear":  # k * duration / count, k = 1..count
            times = [(end * k + cp.count // 2) // cp.count for k in range(1, cp.count + 1)]
        else:  # geometric from start to duration
            ratio = math.log(end / cp.start)
            times = [round(cp.start * math.exp(ratio * i / (cp.count - 1))) for i in range(cp.count)]
            times[0], times[-1] = cp.start, end
        return sorted({t for t in times if 0 < t <= end})

    def resolved_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field, with canonical unit strings; loads back equal."""
        # absent sections and the default fill leave no key: the hash of older files holds
        exclude: dict[str, Any] = {}
        if self.faults is None:
            exclude["faults"] = True
        if self.chip.fill == "network":
            exclude["chip"] = {"fill"}
        if self.simulation.device == "cpu":
            exclude["simulation"] = {"device"}
        if self.outputs.vcd is None:
            exclude["outputs"] = {"vcd"}
        return self.model_dump(mode="json", exclude=exclude or None)

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.resolved_dict(), sort_keys=True).encode()).hexdigest()

    def with_overrides(self, overrides: Sequence[str]) -> Scenario:
        """A copy with ``key.path=value`` overrides applied and everything re-validated."""
        return _validate(apply_overrides(self.resolved_dict(), overrides))


# ---- loading ---------------------------------------------------------------------------------



def _validate(raw: dict[str, Any]) -> Scenario:
    try:
        return Scenario.model_validate(raw, context={UNITS_REQUIRED: True})
    except ValidationError as exc:
        raise scenario_error(exc, Scenario) from None


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read, check and validate a scenario file; relative paths in it are relative to its folder."""
    path = Path(path)
    raw = parse_yaml(read_input_file(path, "scenario file"), str(path))
    if not isinstance(raw, dict):
        raise ScenarioError([(str(path), "the top level must be a mapping of sections (name:, chip:, policy: ...)")])
    raw.setdefault("name", path.stem)
    for section_name, keys in (("network", ("data_path", "checkpoint")), ("traffic", ("trace",))):
        section_ = raw.get(section_name)
        if isinstance(section_, dict):
            for key in keys:
                if isinstance(section_.get(key), str) and section_[key]:
                    section_[key] = str(absolute_path(section_[key], path.parent.absolute()))
    return _validate(apply_overrides(raw, overrides))


def explain(scenario: Scenario) -> str:
    """A short human summary for ``twin validate``."""
    s, chip, net, pol = scenario, scenario.chip, scenario.network, scenario.policy
    times = s.checkpoint_times_ns()
    policy = f"{pol.name} (never corrected), GDC {'on' if pol.gdc else 'off'}"
    if getattr(pol, "class_", None):
        policy = f"user class {pol.class_} with {pol.params()}, GDC {'on' if pol.gdc else 'off'}"
    elif hasattr(pol, "interval"):
        policy = f"{pol.name} every {duration_label(pol.interval)}"
        if isinstance(pol, ThresholdPolicy):
            policy += f" when normalised drift > {pol.threshold:g}"
        if hasattr(pol, "growth"):
            policy += f", growing x{pol.growth:g} up to {duration_label(pol.max_interval)}"
        policy += (f", decoder {pol.decoder}, GDC {'on' if pol.gdc else 'off'}, tolerance "
                   f"{pol.correction_tolerance:g} of a level step, max retries {pol.max_retries}")
    training = f"{'hardware-aware' if net.hwa else 'digital'} training"
    if net.checkpoint is not None:
        training = f"weights from {net.checkpoint}"
    lines = [
        f"scenario     {s.name} (sha256 {s.sha256()[:12]})" + (f": {s.description}" if s.description else ""),
        f"network      {net.architecture} on {net.dataset}, {training}",
        f"duration     {duration_label(s.duration)}, seed {s.seed}",
        f"policy       {policy}",
        f"chip         {chip.tiles} tiles of {chip.rows}x{chip.cols}, "
        + (f"K = {chip.levels} levels" if chip.encoding == "levels" else
           f"analog weights (one pair each; reference cells at K = {chip.levels} levels)")
        + f", g_max {chip.g_max_us:g} uS, {chip.reference_cells} reference cells"
        + (", every weight cell filled (synthetic weights beside the network)" if chip.fill == "synthetic" else ""),
        f"checkpoints  {len(times)}, from {duration_label(times[0])} to {duration_label(times[-1])}",
    ]
    if s.traffic is not None:
        t = s.traffic
        how = "in windows" if t.windowed(s.duration) else "request by request"
        lines.append(f"traffic      {t.arrivals} arrivals, ~{t.expected_requests(s.duration):,.0f} requests "
                     f"(simulated {how}), batch {t.batch}, {t.replicas} replica(s), {t.layers} layers, "
                     f"maintenance {t.maintenance}s, power {t.power.schedule}")
    if s.faults is not None:
        lines.append(faults_line(s.faults))
    return "\n".join(lines)
