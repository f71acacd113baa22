"""Figure 4: accuracy evaluation at a checkpoint, the twin's against aihwkit's own analog forward.

The same network, test batch and PCM model on both sides: the analog-weight scenario
(scenarios/analog_hwa_gdc.yaml: continuous targets, one differential pair per weight, GDC, no
correction; here without HWA training so that the cached digits network serves, and with the
network seed pinned so that every programming carries the same network), read at one checkpoint.

- **twin**: ``programmings`` whole chip runs (seeds 0 ..), each programmed through its
  program-and-verify loop and measured by its accuracy observer at the checkpoint (the mean of
  ``evaluation.accuracy_samples`` reads); the timing is the observer's evaluation of one more
  ``Checkpoint`` on the last run's bus (read of the network's devices, read-back weights with GDC,
  forward pass), per sample, best of ``repeats``.
- **aihwkit**: ``TorchInferenceRPUConfig`` with a perfect forward, its PCMLikeNoiseModel and GDC
  (twin/toolchain/aihwkit_bridge.py, as the cross-check): ``programmings`` calls of
  ``program_analog_weights``, each read once at the checkpoint (``aihwkit_accuracy``); the timing
  is one sample, ``drift_analog_weights(t)`` (drift, read noise, GDC) and the forward pass, best of
  ``repeats`` over ``samples``.

speedup = aihwkit seconds per sample / twin seconds per sample. The statistics agree when the two
means are within their standard errors (over programmings; z printed).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from bench.common import ROOT

__all__ = ["accuracy_figures"]


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan")
    return {"mean": float(a.mean()), "se": se, "n": int(a.size), "values": a.tolist()}


def accuracy_figures(programmings: int = 5, repeats: int = 3, checkpoint: str = "1 d",
                     scenario: str = "scenarios/analog_hwa_gdc.yaml") -> dict:
    from aihwkit.nn.conversion import convert_to_analog

    from twin.chip.events import Checkpoint
    from twin.scenario.build import build, network_spec
    from twin.scenario.schema import load_scenario
    from twin.toolchain.aihwkit_bridge import aihwkit_accuracy, crosscheck_rpu_config
    from twin.toolchain.prepare import prepare_network
    from twin.units import SECOND

    overrides = ["network.hwa=false", f"duration={checkpoint}", f"checkpoints=[{checkpoint}]"]
    base = load_scenario(ROOT / scenario, overrides)
    if base.network.seed is None:
        overrides.append(f"network.seed={base.seed}")
        base = base.with_overrides([f"network.seed={base.seed}"])
    t_ns = base.checkpoint_times_ns()[-1]

    # --- the twin: whole programmings, then its evaluation timed on the last one -----------------
    twin_values, run = [], None
    build_run_s = []
    for seed in range(programmings):
        start = time.perf_counter()
        run = build(base.with_overrides([f"seed={base.seed + seed}"]))
        run.run()
        build_run_s.append(time.perf_counter() - start)
        twin_values.append(run.observers.accuracy.rows[-1].accuracy)
    observer = run.observers.accuracy
    samples = int(observer.samples)
    twin_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run.chip.bus.emit(Checkpoint(t_ns, "chip"))
        twin_times.append((time.perf_counter() - start) / samples)
    twin_s = min(twin_times)

    # --- aihwkit: the same network, batch and PCM model --------------------------------------
    spec, network_seed = network_spec(base)
    network = prepare_network(spec, base.chip.levels, network_seed, base.evaluation.test_images, quantized=False)
    x, y = observer.x_test, observer.y_test
    if not torch.equal(x, network.x_test):
        raise RuntimeError("the twin's test batch and aihwkit's differ")
    t_s = t_ns / SECOND
    theirs = aihwkit_accuracy(network.model, x, y, [t_s], programmings, 1_000_000, base.chip.g_max_us,
                              gdc=base.policy.gdc)
    aihwkit_times = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        analog = convert_to_analog(network.model, crosscheck_rpu_config(base.chip.g_max_us, base.policy.gdc))
        analog.eval()
        analog.program_analog_weights()
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(samples):
                analog.drift_analog_weights(t_s)
                (analog(x).argmax(dim=1) == y).float().mean().item()
            aihwkit_times.append((time.perf_counter() - start) / samples)
    aihwkit_s = min(aihwkit_times)

    ours, other = _stats(twin_values), _stats(theirs[t_s])
    z = (ours["mean"] - other["mean"]) / math.hypot(ours["se"], other["se"]) if programmings > 1 else float("nan")
    return {"scenario": scenario, "overrides": overrides, "checkpoint": checkpoint, "images": int(x.shape[0]),
            "gdc": bool(base.policy.gdc), "samples_per_checkpoint": samples, "programmings": programmings,
            "twin_s_per_sample": twin_s, "aihwkit_s_per_sample": aihwkit_s, "speedup": aihwkit_s / twin_s,
            "twin_times_s": twin_times, "aihwkit_times_s": aihwkit_times,
            "twin_build_and_run_s": build_run_s,
            "twin_accuracy": ours, "aihwkit_accuracy": other, "z": z, "agree": bool(abs(z) <= 2) if z == z else None,
            "note": "speedup = aihwkit / twin seconds per accuracy sample (>= 10 wanted); accuracy mean and standard "
                    "error over programmings, z = difference / combined standard error"}


if __name__ == "__main__":
    import json
    print(json.dumps(accuracy_figures(3, 2), indent=1))
