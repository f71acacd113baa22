"""Program-and-verify as a design knob: what a tighter P&V buys and what it costs.

For K = 2, 4, 8 levels (g_max = 25 uS, targets k * g_max / K for k = 1..K, from RESET, --devices
devices per level shuffled over the rows of 256 x 256 arrays, fixed seeds) the script runs one
initial-programming session per (K, setting) over a grid of P&V settings: verify band scale
1, 1/2, 1/4 of the calibrated band; the calibrated fixed step (3.0 +- 1.2 uS), a finer fixed step
(1.5 +- 0.6 uS) or the adaptive step; 1 or 4 verify reads averaged. It charges every round with
the default CostModel (twin.chip.parameters defaults, as twin/scenario/build.py cost_model) and
writes docs/results/pv_curve.csv (one row per K and setting; every column and its unit in
docs/program-verify.md, "P&V as a design knob") and docs/results/pv_curve.png; it prints the
markdown table quoted in that document. About 1.5 minutes on two cores (correlated read noise).

    .venv/bin/python bench/pv_curve.py [--devices 3000] [--out docs/results] [--read-noise-model independent]
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin.chip.ledger import CostModel  # noqa: E402
from twin.chip.parameters import EnergyCosts, PulseChannels, TimingCosts  # noqa: E402
from twin.device.parameters import G_MAX_US, PCMParameters, PulseParameters  # noqa: E402
from twin.device.pcm import DeviceArray, PCMStatistics  # noqa: E402
from twin.device.program_verify import ProgramVerifySession  # noqa: E402
from results_io import write_csv  # noqa: E402  (bench/, beside this script)
from twin.atomic import atomic_write_bytes  # noqa: E402

LEVEL_COUNTS = (2, 4, 8)
BAND_SCALES = (1.0, 0.5, 0.25)
STEPS = {"fixed 3.0": dict(partial_set_step_mode="fixed"),
         "fixed 1.5": dict(partial_set_step_mode="fixed", partial_set_step_mean_us=1.5, partial_set_step_std_us=0.6),
         "adaptive": dict(partial_set_step_mode="adaptive")}
VERIFY_READS = (1, 4)
ROWS = COLS = 256  # the default tile geometry: index // COLS is the (tile, sign, row) line
SEED = 2024

COLUMNS = ("read_noise_model", "levels", "level_step_us", "setting", "band_scale", "step_mode", "step_mean_us",
           "step_std_us", "adaptive_gain", "adaptive_min_us", "verify_reads", "devices", "converged_fraction",
           "residual_mean_us", "residual_std_us", "residual_rms_us", "beyond_half_step_fraction",
           "pulses_per_device", "max_pulses", "partial_set_per_device", "reset_per_device",
           "verify_reads_per_device", "rounds", "time_per_device_ns", "energy_per_device_j")


@dataclass(frozen=True)
class Setting:
    step: str
    band_scale: float
    verify_reads: int

    @property
    def name(self) -> str:
        return f"{self.step}, band x{self.band_scale:g}, reads {self.verify_reads}"

    def params(self) -> PulseParameters:
        base = PulseParameters()
        return replace(base, verify_tolerance_abs_us=base.verify_tolerance_abs_us * self.band_scale,
                       verify_tolerance_rel=base.verify_tolerance_rel * self.band_scale,
                       verify_reads=self.verify_reads, **STEPS[self.step])


def default_cost_model() -> CostModel:
    """As twin/scenario/build.py cost_model builds it from a default scenario."""
    return CostModel(TimingCosts(), EnergyCosts(), PulseChannels().channels)


def run_one(levels: int, setting: Setting, devices_per_level: int, costs: CostModel, read_noise: str) -> dict:
    params = setting.params()
    order = torch.randperm(levels * devices_per_level, generator=torch.Generator().manual_seed(SEED + levels))
    level = (torch.arange(1, levels + 1).repeat_interleave(devices_per_level))[order]
    devices = DeviceArray(levels, PCMStatistics(PCMParameters(g_max_us=G_MAX_US, read_noise_model=read_noise)), level)
    g_target = devices.target_conductance()
    n = level.numel()
    session = ProgramVerifySession(devices, torch.arange(n), g_target, params,
                                   torch.Generator().manual_seed(SEED + 100 * levels), ROWS, COLS, 0, True)
    duration_ns, energy_j, verify_reads = 0, [], 0
    while not session.done:
        outcome = session.step(0)
        cost = costs.pv_round(outcome.partial_set, outcome.reset, outcome.verify_rows, outcome.verify_devices,
                              initial=True)
        duration_ns += cost.duration_ns
        energy_j.extend(j for _, j in cost.energy)
        verify_reads += outcome.verify_devices
    result = session.finish(0)
    residual = (devices.g_prog - g_target).double()
    step_us = G_MAX_US / levels
    pulses = result.pulses_per_device.double()
    return {"read_noise_model": read_noise, "levels": levels, "level_step_us": step_us, "setting": setting.name,
            "band_scale": setting.band_scale,
            "step_mode": params.partial_set_step_mode, "step_mean_us": params.partial_set_step_mean_us,
            "step_std_us": params.partial_set_step_std_us,
            "adaptive_gain": params.adaptive_step_gain if params.partial_set_step_mode == "adaptive" else "",
            "adaptive_min_us": params.adaptive_step_min_us if params.partial_set_step_mode == "adaptive" else "",
            "verify_reads": params.verify_reads, "devices": n,
            "converged_fraction": result.converged.double().mean().item(),
            "residual_mean_us": residual.mean().item(), "residual_std_us": residual.std().item(),
            "residual_rms_us": residual.square().mean().sqrt().item(),
            "beyond_half_step_fraction": (residual.abs() > step_us / 2).double().mean().item(),
            "pulses_per_device": pulses.mean().item(), "max_pulses": int(pulses.max().item()),
            "partial_set_per_device": result.partial_set / n, "reset_per_device": result.reset / n,
            "verify_reads_per_device": verify_reads / n, "rounds": result.rounds,
            "time_per_device_ns": duration_ns / n, "energy_per_device_j": math.fsum(energy_j) / n}


def plot(rows: list[dict], path: Path, read_noise: str) -> None:
    colours = {2: "tab:blue", 4: "tab:orange", 8: "tab:green"}
    markers = {"fixed 3.0": "o", "fixed 1.5": "s", "adaptive": "^"}
    costs = (("pulses_per_device", "pulses per device"), ("time_per_device_ns", "time per device (ns)"),
             ("energy_per_device_j", "energy per device (J)"))
    quality = (("residual_std_us", "residual std (uS)"), ("beyond_half_step_fraction", "fraction beyond half a step"))
    fig, axes = plt.subplots(len(quality), len(costs), figsize=(15, 8.5), squeeze=False)
    for i, (qkey, qlabel) in enumerate(quality):
        for j, (ckey, clabel) in enumerate(costs):
            ax = axes[i][j]
            for levels in LEVEL_COUNTS:
                for step, marker in markers.items():
                    for reads in VERIFY_READS:
                        line = [r for r in rows if r["levels"] == levels and r["setting"].startswith(step + ",")
                                and r["verify_reads"] == reads]
                        line.sort(key=lambda r: -r["band_scale"])
                        ax.plot([r[ckey] for r in line], [r[qkey] for r in line], marker=marker,
                                color=colours[levels], linestyle="-" if reads == 1 else ":",
                                markerfacecolor=colours[levels] if reads == 1 else "none", alpha=0.85)
            ax.set_xlabel(clabel)
            ax.set_ylabel(qlabel)
            ax.set_yscale("symlog", linthresh=1e-3) if qkey == "beyond_half_step_fraction" else ax.set_yscale("log")
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, label=f"K = {k}") for k, c in colours.items()]
    handles += [plt.Line2D([], [], color="grey", marker=m, linestyle="", label=s) for s, m in markers.items()]
    handles += [plt.Line2D([], [], color="grey", linestyle="-", label="1 verify read"),
                plt.Line2D([], [], color="grey", linestyle=":", marker="o", markerfacecolor="none",
                           label="4 verify reads averaged")]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles))
    fig.suptitle(f"P&V from RESET, g_max = {G_MAX_US:g} uS; each line: band x1 -> x1/2 -> x1/4 "
                 f"(verify-read noise: {read_noise})", y=0.93)
    fig.tight_layout(rect=(0, 0, 1, 0.91))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})  # same input, same bytes
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def markdown(rows: list[dict]) -> str:
    lines = ["| K | step | band | reads | converged | residual mean / std (uS) | beyond half step | pulses / device "
             "(max) | time / device (ns) | energy / device (pJ) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['levels']} | {r['setting'].split(',')[0]} | x{r['band_scale']:g} | {r['verify_reads']} "
                     f"| {100 * r['converged_fraction']:.2f} % | {r['residual_mean_us']:+.3f} / "
                     f"{r['residual_std_us']:.3f} | {100 * r['beyond_half_step_fraction']:.2f} % "
                     f"| {r['pulses_per_device']:.1f} ({r['max_pulses']}) | {r['time_per_device_ns']:.1f} "
                     f"| {1e12 * r['energy_per_device_j']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=3000, help="devices per level")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--read-noise-model", default=PCMParameters().read_noise_model,
                        help="PCMParameters.read_noise_model of the verify reads (default: the model's default)")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    costs = default_cost_model()
    start = time.perf_counter()
    rows = [run_one(levels, Setting(step, scale, reads), args.devices, costs, args.read_noise_model)
            for levels in LEVEL_COUNTS for step in STEPS for reads in VERIFY_READS for scale in BAND_SCALES]
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, COLUMNS, args.out / "pv_curve.csv")
    plot(rows, args.out / "pv_curve.png", args.read_noise_model)
    print(markdown(rows))
    print(f"\nverify-read noise model: {args.read_noise_model}; {len(rows)} sessions in "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
