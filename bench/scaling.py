"""Figure 7: how a run's time scales with devices (campaigns fixed) and with campaigns (devices
fixed), one axis at a time, log-log, with the least-squares exponent of time against size.

Both axes start from scenarios/default.yaml (daily correction, drift-aware decoder, GDC) with
4 checkpoints and 1 accuracy sample each (accuracy evaluation is a fixed cost, not what scales).

- **devices** (10 daily campaigns: 11 simulated days): ``chip.fill: synthetic`` fills every
  weight cell of every tile, so every device is programmed, probed and corrected; the chip grows
  from 24 x 24 tiles (9,216 devices) through 64 x 64 and 128 x 128 to 256 x 256 tiles (up to 76
  of them: 1e7 devices). Tile geometry changes along the axis (the network sets the smallest chip).
  Without ``chip.fill`` in the schema, the axis adds spare tiles, which no campaign touches:
  then it measures only what an idle device costs, and says so.
- **campaigns** (devices fixed: the 9,216-device chip): 10 .. 1e4 daily campaigns (up to 27 years).

Each axis runs in one child process (bench/child.py): one warm-up, then one timed
``simulate`` per point (compute time: imports and the model cache warm), split into build and
run; the exponent is fitted to the compute time, and to the run alone (``exponent_run_only``:
without the build's fixed network preparation). Points that do not finish
within the axis' time limit are reported missing.
"""

from __future__ import annotations

import io

import numpy as np

from bench.common import run_child

__all__ = ["DEVICE_POINTS", "CAMPAIGN_POINTS", "scaling_figures", "fit_exponent", "plot"]

BASE = ["checkpoints.count=4", "evaluation.accuracy_samples=1", "outputs.per_device_pulses=false"]
# (rows = cols, tiles): 2 x rows x cols x tiles devices
DEVICE_POINTS = [(24, 8), (64, 4), (128, 3), (256, 3), (256, 8), (256, 24), (256, 76)]
SMALL = (24, 8)
CAMPAIGN_POINTS = [10, 30, 100, 300, 1000, 3000, 10000]


def fill_supported() -> bool:
    from twin.scenario.schema import load_scenario
    from bench.common import ROOT
    try:
        load_scenario(ROOT / "scenarios/default.yaml", ["chip.fill=synthetic"])
        return True
    except Exception:  # noqa: BLE001 (a ScenarioError: the field does not exist here)
        return False


def _geometry(rows: int, tiles: int, fill: bool) -> list[str]:
    return [f"chip.rows={rows}", f"chip.cols={rows}", f"chip.tiles={tiles}"] + (["chip.fill=synthetic"] if fill else [])


def fit_exponent(x: list[float], t: list[float]) -> float | None:
    """Slope of log t against log x (least squares); None with fewer than two points."""
    if len(x) < 2:
        return None
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(t, float)), 1)[0])


def _axis(axis: str, points: list[dict], timeout_s: float, torch_threads: int | None) -> dict:
    report, proc = run_child({"mode": "scaling", "axis": axis, "scenario": "scenarios/default.yaml",
                              "points": points, "warmup": True, "warmup_overrides": ["duration=2 d"]},
                             timeout_s, torch_threads)
    done = report.get("points", [])
    key = "devices" if axis == "devices" else "campaigns"
    xs = [p[key] for p in done]
    ts = [p["compute_s"] for p in done]
    return {"points": done, "missing": [p["label"] for p in points[len(done):]],
            "timed_out": bool(report.get("timed_out")), "exponent": fit_exponent(xs, ts),
            "exponent_run_only": fit_exponent(xs, [p["run_s"] for p in done]),
            "axis_wall_s": proc.wall_s, "peak_rss_mb": proc.peak_rss_mb}


def scaling_figures(max_devices: float = 1e7, max_campaigns: int = 1000, timeout_s: float = 600,
                    torch_threads: int | None = None) -> dict:
    fill = fill_supported()
    device_points = [{"label": f"{2 * r * r * n} devices ({n} tiles of {r}x{r})",
                      "overrides": BASE + ["duration=11 d"] + _geometry(r, n, fill)}
                     for r, n in DEVICE_POINTS if 2 * r * r * n <= max_devices * 1.01]
    if not fill:  # the network's tiles only are used; spare 256 x 256 tiles add idle devices
        device_points = [{"label": f"{2 * 256 * 256 * n} devices ({n} tiles of 256x256, spare idle)",
                          "overrides": BASE + ["duration=11 d"] + _geometry(256, n, False)}
                         for n in (3, 8, 24, 76) if 2 * 256 * 256 * n <= max_devices * 1.01]
    rows, tiles = SMALL
    # daily campaigns at 1 d .. c d (none at t = 0, none at the end): c + 1 days hold c campaigns
    campaign_points = [{"label": f"{c} campaigns",
                        "overrides": BASE + [f"duration={c + 1} d"] + _geometry(rows, tiles, fill)}
                       for c in CAMPAIGN_POINTS if c <= max_campaigns]
    out = {"fill": "synthetic" if fill else "network (chip.fill not in the schema: spare tiles idle)",
           "devices": _axis("devices", device_points, timeout_s, torch_threads),
           "campaigns": _axis("campaigns", campaign_points, timeout_s, torch_threads)}
    out["note"] = ("compute time of simulate() per point after a warm-up, one child process per axis; devices axis: "
                   "10 daily campaigns; campaigns axis: the 9,216-device chip (8 tiles of 24x24" +
                   (", synthetic fill)" if fill else ")"))
    return out


def plot(figures: dict, stem) -> list[str]:
    """Log-log plots of both axes with their fitted lines, as STEM.png and STEM.svg."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from twin.atomic import atomic_write_bytes
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, axis, label in ((axes[0], "devices", "devices (10 daily campaigns)"),
                            (axes[1], "campaigns", "campaigns (9,216 devices)")):
        data = figures.get(axis, {})
        pts = data.get("points", [])
        xs = [p[axis] for p in pts]
        ts = [p["compute_s"] for p in pts]
        if xs:
            ax.loglog(xs, ts, "o-", label="simulate (build + run)")
            if all("run_s" in p for p in pts):
                ax.loglog(xs, [p["run_s"] for p in pts], "s:", label="run alone")
            k = data.get("exponent")
            if k is not None:
                c = np.polyfit(np.log(xs), np.log(ts), 1)
                grid = np.geomspace(min(xs), max(xs), 50)
                ax.loglog(grid, np.exp(np.polyval(c, np.log(grid))), "--", label=f"fit: t ~ x^{k:.2f}")
        ax.set_xlabel(label)
        ax.set_ylabel("compute time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("pcm-twin: run time against devices and campaigns (make bench)")
    fig.tight_layout()
    written = []
    for ext in ("png", "svg"):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, dpi=120)
        path = stem.with_suffix(f".{ext}")
        atomic_write_bytes(path, buffer.getvalue())
        written.append(str(path))
    plt.close(fig)
    return written
