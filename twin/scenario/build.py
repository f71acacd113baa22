"""``build``: the one place where a validated :class:`Scenario` becomes runtime objects.

Scenario sections turn into the runtime dataclasses field by field (:func:`runtime`, same names),
the offline toolchain trains and quantizes the network and maps it onto tiles, and the chip is
assembled with its observers attached. After this step the original levels live in the off-chip
memory model and the scoring observer only, and the test set in the accuracy observer only.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from firmware_model.controller import Controller
from firmware_model.interface import FirmwareConfig, TileLayout
from firmware_model.policies import Policy, make_policy
from twin.chip.chip import Chip, ChipLayout, CountingEnvironment, stream
from twin.chip.pulse_generator import Granularity
from twin.chip.events import Busy, Command, EventBus, Fault, Power, ProgramRounds, StateChange, Waiting
from twin.chip.faults import FAULT_STREAMS, FaultScorer, inject
from twin.chip.accuracy import AccuracyObserver, UnmaintainedBaselines
from twin.chip.ledger import CostModel, Ledger
from twin.chip.observers import AvailabilityObserver, CampaignTable, EventTrace, Observers, ScoringObserver, WearObserver
from twin.chip.offchip import OffchipMemory
from twin.chip.parameters import ChipSpec, EnergyCosts, FaultParameters, PulseChannels, TimingCosts
from twin.device.parameters import PCMParameters, PulseParameters
from twin.device.pcm import DeviceArray
from twin.report.vcd import attach_recorder
from twin.scenario.derive import exposed_fields, runtime
from twin.scenario.faults import fault_parameters
from twin.scenario.policies import CONTROLLER_FIELDS, CustomPolicy, load_policy_class
from twin.scenario.schema import Scenario
from twin.seeding import named_seed
from twin.toolchain.deploy import deploy_analog, deploy_levels, layer_sensitivity
from twin.toolchain.mapping import SyntheticFill, synthetic_fill
from twin.toolchain.networks import crossbar_layers
from twin.toolchain.prepare import prepare_network
from twin.toolchain.readout import Deployment, PeripheryConfig
from twin.toolchain.specs import NetworkSpec, TileGeometry
from twin.toolchain.networks import NETWORKS
from twin.traffic.parameters import PowerSchedule, Windowing, Workload
from twin.traffic.service import ServiceModel, service_model
from twin.traffic.setup import TrafficSetup
from twin.traffic.shapes import layer_shapes

__all__ = ["Assembly", "ScenarioBuildError", "build", "assemble", "network_spec", "cost_model", "firmware_config",
           "make_firmware_policy"]


class DeviceUnavailable(RuntimeError):
    """``simulation.device`` names a torch device this machine does not have (an environment
    failure, exit 4, not bad input: the same file runs where there is one)."""


def torch_device(name: str) -> torch.device:
    """The torch device of ``simulation.device``, checked to exist here."""
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"simulation.device: cuda, but torch {torch.__version__} finds no CUDA GPU here "
                                "(the default install is the cpu build; docs/performance.md says how to install a "
                                "CUDA build); use simulation.device: cpu")
    return torch.device(name)


class ScenarioBuildError(ValueError):
    """The scenario is valid on its own but cannot be built; names the field."""


@dataclass
class Assembly:
    """A built run: the chip, its observers, and the network it carries."""

    scenario: Scenario | None
    chip: Chip
    observers: Observers
    mapped_devices: int
    digital_accuracy: float  # the float network's test accuracy, for reports
    model_sha256: str  # of the trained network's state_dict (the same network gives the same hash)
    synthetic_devices: int | None = None  # chip.fill: synthetic: devices holding synthetic weights; None: no fill

    def run(self) -> None:
        self.chip.run()

    @property
    def traffic(self):
        """The traffic engine (None without traffic); its ``figures`` after the run."""
        return self.chip.traffic

    def state(self, copy: bool = True) -> dict:
        """The whole run at a campaign boundary: chip (devices, generators, controller) and
        observers. ``copy=False``: the device arrays share the live memory, for a caller that
        serialises the state before the simulation goes on (twin.resume's checkpoints)."""
        return {"identity": self._identity(), "chip": self.chip.state(copy), "observers": self.observers.state()}

    def snapshot(self) -> bytes:
        """:meth:`state`, pickled."""
        return pickle.dumps(self.state(copy=False), protocol=pickle.HIGHEST_PROTOCOL)

    def _identity(self) -> dict:
        return {"scenario": self.scenario.sha256() if self.scenario is not None else None,
                "model_sha256": self.model_sha256}

    def restore(self, snapshot: bytes | dict) -> None:
        """Load a snapshot (:meth:`snapshot`'s bytes or :meth:`state`'s dict) into this freshly
        built assembly (same scenario); then :meth:`chip.start` is not needed: the processes are
        restarted."""
        state = pickle.loads(snapshot) if isinstance(snapshot, bytes) else snapshot
        if state["identity"] != self._identity():
            raise ValueError(f"the snapshot is of another run ({state['identity']}), not of {self._identity()}")
        self.observers.load_state(state["observers"])
        self.chip.load_state(state["chip"])

    def resume(self) -> None:
        self.chip.env.run(until=self.chip.duration_ns)
        self.chip.finish()


def network_spec(scenario: Scenario) -> tuple[NetworkSpec, int]:
    """The network a scenario deploys and the seed of its data, training and quantization
    (the ``hybrid`` policy deploys the HWA-trained network)."""
    spec = runtime(NetworkSpec, scenario.network)
    if scenario.policy.name == "hybrid":
        spec = replace(spec, hwa=True)
    return spec, scenario.seed if spec.seed is None else spec.seed


def cost_model(scenario: Scenario) -> CostModel:
    channels = runtime(PulseChannels, scenario.chip.pulse_generator).channels
    return CostModel(runtime(TimingCosts, scenario.timing), runtime(EnergyCosts, scenario.energy), channels)


def firmware_config(deployment: Deployment, replicas: int = 1, fill: SyntheticFill | None = None) -> FirmwareConfig:
    """The firmware's stored configuration: layout and reference levels, no weight values
    (``replicas`` copies of the network on consecutive tiles, replica by replica). With a
    synthetic ``fill`` every tile of the chip is configured, every weight cell a weight: the
    firmware cannot tell synthetic weights from the network's."""
    mapping = deployment.mapping
    g = mapping.geometry
    codes_per_level = deployment.devices.levels // mapping.levels  # 1, or the analog target codes per level
    if fill is not None:
        if replicas != 1:
            raise ValueError("a synthetic fill holds one copy of the network")
        ref_cells = mapping.reference_pos[0] % g.devices_per_tile
        tiles = tuple(TileLayout(t, g.rows, g.cols, fill.weight_cells(t), ref_cells.copy(),
                                 mapping.reference_level * codes_per_level) for t in range(fill.tiles))
        return FirmwareConfig(deployment.devices.levels, deployment.devices.g_max_us, tiles)
    cells = g.rows * g.cols
    weight_cells = np.zeros((mapping.n_tiles, cells), dtype=bool)
    for layer in mapping.layers.values():
        flat = layer.device_pos.ravel()
        weight_cells[flat // g.devices_per_tile, flat % g.devices_per_tile] = True
    ref_cells = mapping.reference_pos[0] % g.devices_per_tile
    n = mapping.n_tiles
    tiles = tuple(TileLayout(r * n + t, g.rows, g.cols, weight_cells[t].reshape(g.rows, g.cols), ref_cells.copy(),
                             mapping.reference_level * codes_per_level) for r in range(replicas) for t in range(n))
    return FirmwareConfig(deployment.devices.levels, deployment.devices.g_max_us, tiles)


def make_firmware_policy(scenario: Scenario, tile_order: list[int] | None) -> Policy:
    """The firmware policy object a scenario's ``policy`` section describes (same field names)."""
    policy = scenario.policy
    if isinstance(policy, CustomPolicy):  # validated: the class imports and builds with these keys
        cls = load_policy_class(policy.class_)
        extra = {"tile_order": tile_order} if policy.order == "sensitivity" else {}
        return cls(**policy.params(), **extra)
    firmware_cls = type(policy).__firmware__
    params = {name: getattr(policy, name) for name in exposed_fields(firmware_cls)}
    if "tile_order" in {f for f in firmware_cls.__dataclass_fields__}:
        params["tile_order"] = tile_order
    return make_policy(policy.name, **params)


def service(scenario: Scenario, model: nn.Module) -> ServiceModel:
    """Time and energy of one request on the chip, from the network's layers and the per-op costs."""
    timing, energy, chip = scenario.timing, scenario.energy, scenario.chip
    side = NETWORKS[scenario.network.architecture][1]
    return service_model(layer_shapes(model, (1, side, side)), runtime(TileGeometry, chip), timing.mvm, energy.mvm,
                         timing.digital_op, energy.digital_op, chip.digital_lanes, scenario.traffic.batch,
                         scenario.traffic.energy_scaling)


def traffic_setup(scenario: Scenario, model: nn.Module) -> TrafficSetup:
    traffic = scenario.traffic
    workload, served = runtime(Workload, traffic), service(scenario, model)
    windowed = traffic.windowed(scenario.duration)
    stage_ns = served.bottleneck_ns if workload.layers == "pipelined" else served.sequential_ns
    load = workload.mean_rate * stage_ns / 1e9 / workload.replicas
    if windowed and load >= 1:  # the queue never empties: windows would never close
        raise ScenarioBuildError(f"traffic.rate: an offered load of {load:.3g} (>= 1: the chip cannot keep up) "
                                 "cannot be simulated in windows; use traffic.windows.mode: full with a "
                                 "queue_capacity, or a lower rate")
    return TrafficSetup(served, workload, runtime(PowerSchedule, traffic.power), runtime(Windowing, traffic.windows),
                        windowed, traffic.trace_ns())


def sensitivity_order(deployment: Deployment, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      seed: int) -> list[int]:
    """Tiles of the most accuracy-sensitive layers first (offline measurement, stored as configuration)."""
    loss = layer_sensitivity(model, x, y, seed=seed)
    layers = sorted(deployment.mapping.layers.values(), key=lambda layer: -loss[layer.name])
    return [tile for layer in layers for tile in layer.tiles]


def _structure_only(model: nn.Module) -> nn.Module:
    """A copy with its crossbar weights blanked (NaN): the chip's read-back supplies them."""
    stripped = copy.deepcopy(model)
    with torch.no_grad():
        for _, layer in crossbar_layers(stripped):
            layer.weight.fill_(math.nan)
    return stripped


def _readout(deployment: Deployment, devices: DeviceArray, device: torch.device | str = "cpu") -> Deployment:
    """What the accuracy observer needs: structure, encoding, and reference targets for GDC only."""
    mapping = deployment.mapping
    reference = torch.from_numpy(np.concatenate([mapping.reference_pos, mapping.reference_neg], axis=1).ravel())
    g_reference = torch.zeros_like(deployment.g_target)
    g_reference[reference] = deployment.g_target[reference]
    return Deployment(_structure_only(deployment.model).to(device), deployment.encoding, devices,
                      g_reference.to(device), deployment.w_max)


def build(scenario: Scenario, progress: Callable[[int], None] | None = None) -> Assembly:
    """Train/load, quantize and map the network, then assemble the chip and attach the observers."""
    chip_cfg = scenario.chip
    device = torch_device(scenario.simulation.device)  # before the network is trained or loaded
    spec, network_seed = network_spec(scenario)
    chip_spec = runtime(ChipSpec, chip_cfg)
    analog = chip_spec.encoding == "analog"
    network = prepare_network(spec, chip_spec.levels, network_seed, scenario.evaluation.test_images,
                              quantized=not analog)
    geometry = runtime(TileGeometry, chip_cfg)
    pcm = runtime(PCMParameters, chip_cfg.device, g_max_us=chip_spec.g_max_us)
    if analog:
        deployment = deploy_analog(network.model, geometry, chip_spec.levels, pcm)
    else:
        deployment = deploy_levels(network.model, network.quant, geometry, pcm)
    mapping = deployment.mapping
    replicas = scenario.replicas
    needed = mapping.n_tiles * replicas
    n_tiles = needed if chip_spec.tiles == "auto" else chip_spec.tiles
    if n_tiles < needed:
        raise ScenarioBuildError(f"chip.tiles: the network ({replicas} replicas) needs {needed} tiles of "
                                 f"{geometry.rows} x {geometry.cols}, the chip has {n_tiles}")
    fill = None
    if chip_cfg.fill == "synthetic":  # drawn with the network's seed: the same network, the same fill
        fill = synthetic_fill(mapping, deployment.devices.target_level.numpy(), n_tiles,
                              np.random.default_rng(named_seed(network_seed, "fill")))
    order = None
    if scenario.policy.order == "sensitivity":  # replica by replica: one copy is corrected at a time
        order = sensitivity_order(deployment, network.model, network.x_test, network.y_test, network_seed)
        order = [r * mapping.n_tiles + t for r in range(replicas) for t in order]
    controller = Controller(firmware_config(deployment, replicas, fill), make_firmware_policy(scenario, order),
                            **{name: getattr(scenario.policy, name) for name in CONTROLLER_FIELDS})

    assembly = assemble(deployment, controller, cost_model(scenario), runtime(PulseParameters, chip_cfg.pulse_generator),
                        scenario.seed, scenario.duration, scenario.checkpoint_times_ns(), network.x_test,
                        network.y_test, tiles=n_tiles, gdc=scenario.policy.gdc,
                        granularity=scenario.simulation.granularity,
                        accuracy_samples=scenario.evaluation.accuracy_samples,
                        periphery=PeripheryConfig(enabled=scenario.evaluation.periphery),
                        trace=scenario.outputs.trace, progress=progress,
                        digital_accuracy=network.digital_accuracy,
                        model_sha256=network.model_sha256,
                        traffic=traffic_setup(scenario, network.model) if scenario.traffic is not None else None,
                        levels_scored=not analog,
                        faults=None if scenario.faults is None else fault_parameters(scenario.faults), fill=fill,
                        device=device)
    assembly.scenario = scenario
    if progress is not None:  # at every campaign end too, not only at accuracy checkpoints: the bar follows the work
        assembly.chip.bus.attach(lambda event: progress(event.t_ns), Waiting)
    if scenario.outputs.vcd is not None:  # waveform.vcd (docs/waveforms.md): observers.waveforms
        attach_recorder(assembly, scenario.outputs.vcd)
    # the deployment (original levels) and the trained network (weights) do not outlive the build
    return assembly


def assemble(deployment: Deployment, controller: Controller, costs: CostModel, pulses: PulseParameters, seed: int,
             duration_ns: int, checkpoint_times_ns: list[int], x_test: torch.Tensor, y_test: torch.Tensor,
             *, gdc: bool, granularity: Granularity, accuracy_samples: int, periphery: PeripheryConfig,
             trace: bool, tiles: int | None = None, progress: Callable[[int], None] | None = None,
             digital_accuracy: float = float("nan"), model_sha256: str = "",
             traffic: TrafficSetup | None = None, levels_scored: bool = True,
             faults: FaultParameters | None = None, fill: SyntheticFill | None = None,
             device: torch.device | str = "cpu") -> Assembly:
    """The chip for a deployment, its original levels moved off-chip, its observers attached.
    (The scenario owns the defaults of the settings after ``*``; ``build`` passes them all.)
    With traffic, ``traffic.workload.replicas`` copies of the network sit on consecutive tiles;
    the accuracy observer measures replica 0. ``levels_scored``: the firmware's decoded levels
    mean something (not with analog targets: misreads are then not counted). ``faults``: what to
    inject (docs/faults.md), each kind from its own stream ``faults.<kind>``; None: nothing.
    ``fill`` (``chip.fill: synthetic``, :func:`twin.toolchain.mapping.synthetic_fill`): every tile
    is used, synthetic weights on every weight cell the network leaves free; they are programmed,
    probed, corrected, charged and scored (misreads, displaced) like the network's, and the
    accuracy observer reads the network's devices only. Needs ``tiles == fill.tiles`` and no traffic.
    ``device``: the torch device of the device state, the chip's draws and the accuracy evaluation."""
    mapping, geometry = deployment.mapping, deployment.mapping.geometry
    replicas = 1 if traffic is None else traffic.workload.replicas
    mapped = mapping.n_tiles * replicas
    n_tiles = mapped if tiles is None else tiles
    if fill is not None:
        if traffic is not None or fill.tiles != n_tiles:
            raise ValueError(f"a synthetic fill of {fill.tiles} tiles needs a chip of as many tiles, and no traffic")
        mapped = n_tiles  # every tile holds weights (the whole chip is one network, for availability too)
    n_devices = n_tiles * geometry.devices_per_tile
    devices = DeviceArray.unprogrammed(deployment.devices.levels, deployment.devices.statistics, n_devices, device)
    dpt = geometry.devices_per_tile
    if fill is None:
        original = torch.zeros(n_devices, dtype=torch.int16)
        for r in range(replicas):
            original[r * mapping.n_devices:(r + 1) * mapping.n_devices] = deployment.devices.target_level
        used = deployment.used_devices()
        tile_used = [used[(used >= t * dpt) & (used < (t + 1) * dpt)] - t * dpt for t in range(mapping.n_tiles)]
        tile_used = tile_used * replicas
        weights = np.concatenate([np.flatnonzero(mapping.weight_mask()) + r * mapping.n_devices
                                  for r in range(replicas)])
    else:
        original = torch.from_numpy(fill.levels.copy())
        used = torch.from_numpy(fill.used())
        bounds = torch.searchsorted(used, torch.arange(n_tiles + 1, dtype=torch.int64) * dpt)
        tile_used = [used[bounds[t]:bounds[t + 1]] - t * dpt for t in range(n_tiles)]
        weights = np.flatnonzero(fill.weight)
    layout = ChipLayout(geometry.rows, geometry.cols, n_tiles, mapped, tile_used, geometry.reference_rows,
                        geometry.reference_cells)
    offchip = OffchipMemory(original, dpt, costs)
    chip_faults = None
    if faults is not None:  # placed on the devices now: the chip never learns where
        used_global = torch.cat([u + t * dpt for t, u in enumerate(tile_used)])
        chip_faults = inject(faults, devices, used_global, dpt,
                             {name: stream(seed, f"faults.{name}") for name in FAULT_STREAMS})
    env = CountingEnvironment()
    bus = EventBus()
    engine = None if traffic is None else traffic.engine(env, bus, duration_ns, mapping.n_tiles, seed)
    chip = Chip(env, layout, devices, controller, costs, pulses, seed, offchip, duration_ns,
                checkpoint_times_ns, gdc=gdc, granularity=granularity, bus=bus, traffic=engine, faults=chip_faults)
    ledger = Ledger()
    scoring = ScoringObserver(original, dpt, tile_used, weights, levels_scored)
    readout, x_test, y_test = _readout(deployment, devices, device), x_test.to(device), y_test.to(device)
    observers = Observers(
        ledger=ledger, campaigns=CampaignTable(), scoring=scoring,
        accuracy=AccuracyObserver(chip, ledger, readout, x_test, y_test, stream(seed, "evaluation", device),
                                  accuracy_samples, periphery, progress),
        wear=WearObserver(n_devices),
        availability=AvailabilityObserver([t // mapping.n_tiles if fill is None else 0 for t in range(mapped)],
                                          replicas),
        trace=EventTrace((StateChange, Command, Busy, ProgramRounds, Power, Fault)) if trace else None,
        faults=FaultScorer(chip_faults, scoring, devices.levels),
        baselines=UnmaintainedBaselines(chip, readout, x_test, y_test,
                                        stream(seed, "evaluation.baselines", device), accuracy_samples, periphery))
    observers.attach(chip.bus)
    return Assembly(None, chip, observers, mapping.n_devices, digital_accuracy, model_sha256,
                    None if fill is None else int(fill.synthetic.sum()))
