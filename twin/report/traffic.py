"""The traffic part of a run's results: summary.json ``traffic`` and service.csv (docs/traffic.md,
"Outputs": every field and column with its unit)."""

from __future__ import annotations

import math

from twin.atomic import finite_or_null
from twin.chip.ledger import INFERENCE_COMPONENTS, maintenance_energy
from twin.units import SECOND

__all__ = ["traffic_summary", "service_rows"]


def _per(total_j: float, inferences: float) -> float:
    return total_j / inferences if inferences > 0 else math.nan


def traffic_summary(chip, energy_j: dict[str, float]) -> dict:
    """Service figures, request counts, latency, throughput, energy per inference in context."""
    engine = chip.traffic
    figures, service, workload = engine.figures, engine.service, engine.workload
    inferences = figures["requests"]["served"] * service.batch
    inference_j = math.fsum(energy_j[c] for c in INFERENCE_COMPONENTS)
    per_inference = {"mvm": _per(energy_j["mvm"], inferences), "digital": _per(energy_j["digital"], inferences),
                     "inference": _per(inference_j, inferences),
                     "maintenance": _per(maintenance_energy(energy_j), inferences),
                     "static": _per(energy_j["static"], inferences)}
    per_inference["total"] = per_inference["inference"] + per_inference["maintenance"] + per_inference["static"]
    ops = service.ops_per_inference

    def tops_per_w(joules: float) -> float:
        return ops / joules / 1e12 if joules > 0 else math.nan

    capacity = workload.replicas * SECOND / service.bottleneck_ns if workload.layers == "pipelined" \
        else workload.replicas * SECOND / service.sequential_ns
    off_ns = engine.duration_ns - engine.on_time_ns()
    return finite_or_null({
        "service": {"request_s": service.sequential_ns / SECOND, "inference_s": service.inference_ns / SECOND,
                    "bottleneck_stage_s": service.bottleneck_ns / SECOND, "capacity_rps": capacity,
                    "offered_load": (workload.mean_rate if workload.arrivals != "trace"
                                     else figures["requests"]["arrived"] * SECOND / engine.duration_ns) / capacity,
                    "mvms_per_inference": service.mvms_per_inference, "ops_per_inference": ops},
        "requests": figures["requests"],
        "latency_s": figures["latency_s"],
        "wait_s": figures["wait_s"],
        "throughput_rps": figures["throughput_rps"],
        "throughput_ips": figures["throughput_rps"] * service.batch,
        "mean_in_system": figures["mean_in_system"],
        "energy_per_inference_j": per_inference,
        "maintenance_to_inference_energy": maintenance_energy(energy_j) / inference_j if inference_j else None,
        "tops_per_w": {"inference": tops_per_w(per_inference["inference"]),
                       "with_maintenance": tops_per_w(per_inference["inference"] + per_inference["maintenance"]),
                       "with_maintenance_and_static": tops_per_w(per_inference["total"])},
        "layers": [{"name": layer.name, "tiles": list(layer.tiles), "mvms": layer.mvms,
                    "time_s": layer.time_ns / SECOND, "energy_j": layer.energy_j} for layer in service.layers],
        "deferrals": chip.controller.deferrals,
        "power": {"on_s": engine.on_time_ns() / SECOND, "off_s": off_ns / SECOND,
                  "outages": len(engine.off_intervals)},
        "windows": figures["windows"],
    })


def service_rows(chip) -> list[dict]:
    """service.csv: per layer and tile of replica 0, what one inference costs there; with the
    run's total on every replica's copy of that tile."""
    engine = chip.traffic
    service = engine.service
    inferences = engine.figures["requests"]["served"] * service.batch
    rows = []
    for layer in service.layers:
        for tile, tile_j in zip(layer.tiles, layer.tile_energy_j):
            rows.append({"layer": layer.name, "tile": tile, "mvms": layer.mvms, "row_blocks": layer.row_blocks,
                         "analog_s": layer.analog_ns / SECOND, "digital_s": layer.digital_ns / SECOND,
                         "layer_time_s": layer.time_ns / SECOND, "mvm_energy_j": tile_j,
                         "layer_digital_energy_j": layer.digital_energy_j, "ops": layer.ops,
                         "run_mvm_energy_j": tile_j * inferences})
    return rows
