"""The decoders against an oracle that knows every device's true level but, like them, reads once.

For K = 8, 4, 2 levels (g_max = 25 uS) the script builds tiles of the default chip geometry
(256 x 256 cells: rows 0..254 hold weights whose two devices get levels uniform in 0..K, the first
64 cells of the last row are reference cells at levels 1..K repeated, the rest of that row is
unused: the protocol of docs/decoder.md, "Measured error rates"), programs their used devices at
t = 0 and reads every device once, with a committed probe-like read, at 1 min, 1 h, 1 d, 1 mo and
1 y (one read per device per campaign, the campaigns one after the other on the same devices).
Programming (both by default): ``pv``, program-and-verify from RESET with the default pulse
parameters, as the chip deploys (twin.chip.chip._initial_programming); ``statistical``, aihwkit's
programming-noise draw (DeviceArray.program), as tests/test_decoder.py and the tables of
docs/decoder.md. Each seed is a chip of --tiles tiles programmed together (3 x 3 = 9 tiles).

Every tile's reading is decoded by the nearest-multiple and the drift-aware decoder
(firmware_model.decoder) and by the ORACLE: for each pair of adjacent levels (k, k+1) the cut
that misclassifies the fewest of this tile's labelled weight reads of those two levels. A device
of level k is wrong under ordered cuts t_0 < ... < t_{K-1} exactly when its read lies below
t_{k-1} or at or above t_k, so the error count is a sum of one term per cut, each depending on
that cut alone: the pairwise optima, when ordered (checked), are the best any per-tile threshold
decoder could do from these reads. It is in-sample: the cuts are fitted to the very reads they
are scored on. The optimism that buys is estimated by split-half cross-validation (cuts fitted on
a random half of the tile's weight devices, scored on the other half, and the other way round).
The drift-aware decoder's excess over the oracle is also reported at the cut between levels K-1
and K alone, and a second oracle is fitted to the same devices' noise-free drifted conductances
(DeviceArray.expected_conductance): what the levels' spread after programming and drift alone
allows, were the read free of 1/f noise; and the oracle again on the mean of each device's read and
a second one t_read (250 ns, back to back) or 1 s later (drawn without committing it, so later
campaigns still see one committed read per device): what re-reading could buy, given that the
1/f noise of reads close in time is shared (docs/physics.md).

Writes docs/results/decoder_oracle.csv (one row per programming, K and age; every column and its
unit in docs/decoder.md, "Benchmark: the decoder against an oracle that reads once") and
docs/results/decoder_oracle.md (the markdown tables it prints). About a minute on one core.

    .venv/bin/python bench/decoder_oracle.py [--levels 8 4 2] [--seeds 3] [--tiles 3]
        [--programming pv statistical] [--read-noise-model independent] [--out docs/results]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_model.decoder import make_decoder  # noqa: E402
from firmware_model.interface import FirmwareConfig, ProbeReading, TileLayout  # noqa: E402
from twin.device.parameters import G_MAX_US, PCMParameters, PulseParameters  # noqa: E402
from twin.device.pcm import DeviceArray, PCMStatistics  # noqa: E402
from twin.device.program_verify import ProgramVerifySession  # noqa: E402
from twin.toolchain.mapping import reference_levels  # noqa: E402
from twin.toolchain.specs import TileGeometry  # noqa: E402
from twin.units import DAY, HOUR, MINUTE, MONTH, SECOND, YEAR  # noqa: E402
from results_io import write_csv  # noqa: E402  (bench/, beside this script)
from twin.atomic import atomic_write_text  # noqa: E402

AGES = {"1 min": MINUTE, "1 h": HOUR, "1 d": DAY, "1 mo": MONTH, "1 y": YEAR}
SEED = 5100  # seed s of --seeds is SEED + s; the tiles of one seed are one chip
CV_SEED = 7  # the split-half assignment of the cross-validation (numpy)
DECODERS = ("nearest", "drift_aware")

COLUMNS = ("programming", "read_noise_model", "levels", "age", "age_s", "tiles", "weight_devices_per_tile",
           "nearest_mean", "nearest_std", "drift_aware_mean", "drift_aware_std", "drift_aware_max",
           "oracle_mean", "oracle_std", "oracle_max", "oracle_cv_mean", "optimism_mean", "oracle_noiseless_mean",
           "oracle_two_reads_t_read_mean", "oracle_two_reads_1s_mean",
           "gap_mean", "gap_std", "gap_max", "gap_share", "gap_top_cut_mean", "oracle_cuts_ordered")


# --- tiles ------------------------------------------------------------------------------------
def layout(levels: int, geometry: TileGeometry) -> TileLayout:
    """The default tile: weight rows first, the reference cells at the start of the last row(s)."""
    weight = np.zeros((geometry.rows, geometry.cols), dtype=bool)
    weight[:geometry.weight_rows] = True
    cells = geometry.weight_rows * geometry.cols + np.arange(geometry.reference_cells)
    return TileLayout(tile=0, rows=geometry.rows, cols=geometry.cols, weight_cells=weight, reference_cells=cells,
                      reference_levels=reference_levels(geometry.reference_cells, levels))


def program_chip(levels: int, tiles: int, seed: int, programming: str, read_noise: str, lay: TileLayout
                 ) -> tuple[DeviceArray, np.ndarray, np.ndarray, torch.Generator]:
    """``tiles`` tiles of ``lay``, programmed at t = 0. Returns the devices, every device's true
    level, the per-tile mask of weight devices (local order) and the generator of the reads."""
    n = lay.rows * lay.cols
    weight = np.tile(lay.weight_cells.ravel(), 2)
    ref = np.concatenate([lay.reference_cells, lay.reference_cells + n])
    used = weight.copy()
    used[ref] = True
    gen = torch.Generator().manual_seed(seed)
    truth = np.zeros((tiles, 2 * n), dtype=np.int64)
    truth[:, weight] = torch.randint(0, levels + 1, (tiles, int(weight.sum())), generator=gen).numpy()
    truth[:, ref] = np.concatenate([lay.reference_levels, lay.reference_levels])
    devices = DeviceArray(levels, PCMStatistics(PCMParameters(g_max_us=G_MAX_US, read_noise_model=read_noise)),
                          torch.from_numpy(truth.ravel()))
    index = torch.from_numpy(np.flatnonzero(np.tile(used, tiles)))  # the chip programs weight and reference devices
    if programming == "pv":  # from RESET, as the chip's deployment; rows/cols only count verify lines
        session = ProgramVerifySession(devices, index, devices.target_conductance(index), PulseParameters(), gen,
                                       lay.rows, lay.cols, 0, from_reset=True)
        session.run(0)
    elif programming == "statistical":
        devices.program(0, gen, index=index)
    else:
        raise ValueError(f"unknown programming {programming!r}: expected 'pv' or 'statistical'")
    return devices, truth, weight, gen


# --- the oracle -------------------------------------------------------------------------------
def best_cut(low: np.ndarray, high: np.ndarray) -> tuple[float, int]:
    """The cut t (a device reads 'high' when read >= t) misclassifying the fewest of ``low`` and
    ``high``, and that count. Cuts lie halfway between distinct reads (ties never split)."""
    values = np.concatenate([low, high])
    is_high = np.concatenate([np.zeros(low.size, np.int64), np.ones(high.size, np.int64)])
    order = np.argsort(values, kind="stable")
    v, h = values[order], is_high[order]
    # cutting before position i: the first i reads decode low; errors = high ones among them + low ones after
    high_below = np.concatenate([[0], np.cumsum(h)])
    low_above = low.size - (np.arange(v.size + 1) - high_below)
    errors = high_below + low_above
    valid = np.ones(v.size + 1, dtype=bool)
    valid[1:-1] = v[1:] > v[:-1]
    i = int(np.argmin(np.where(valid, errors, np.iinfo(np.int64).max)))
    if i == 0:
        cut = v[0] - 1.0 if v.size else 0.0
    elif i == v.size:
        cut = v[-1] + 1.0
    else:
        cut = 0.5 * (v[i - 1] + v[i])
    return float(cut), int(errors[i])


def oracle_cuts(reads: np.ndarray, truth: np.ndarray, levels: int) -> np.ndarray:
    return np.array([best_cut(reads[truth == k], reads[truth == k + 1])[0] for k in range(levels)])


def threshold_errors(reads: np.ndarray, truth: np.ndarray, cuts: np.ndarray) -> int:
    """Misread count of the threshold decoder with these cuts (level = number of cuts <= read)."""
    return int((np.searchsorted(cuts, reads, side="right") != truth).sum())


def cut_errors(decoded: np.ndarray, truth: np.ndarray, cut: int) -> int:
    """Misreads charged to the cut between levels ``cut`` and ``cut + 1``: devices of the lower level
    decoded above it plus devices of the upper level decoded at or below it. Summed over the cuts
    this is every misread of any decoder (a device decoded too high is charged to the cut above
    its level, one decoded too low to the cut below)."""
    return int(((truth == cut) & (decoded > cut)).sum() + ((truth == cut + 1) & (decoded <= cut)).sum())


def oracle(reads: np.ndarray, truth: np.ndarray, levels: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, int, bool]:
    """The in-sample oracle's decoded levels, the split-half cross-validated misread count, and
    whether the pairwise cuts came out ordered (then the oracle is the exact optimum)."""
    cuts = oracle_cuts(reads, truth, levels)
    ordered = bool(np.all(np.diff(cuts) > 0))
    decoded = np.searchsorted(np.maximum.accumulate(cuts), reads, side="right")
    half = rng.permutation(reads.size) < reads.size // 2
    cv = 0
    for train in (half, ~half):
        fitted = np.maximum.accumulate(oracle_cuts(reads[train], truth[train], levels))
        cv += threshold_errors(reads[~train], truth[~train], fitted)
    return decoded, cv, ordered


# --- the benchmark ----------------------------------------------------------------------------
def run(levels: int, programming: str, read_noise: str, seeds: int, tiles: int, geometry: TileGeometry
        ) -> list[dict]:
    lay = layout(levels, geometry)
    config = FirmwareConfig(levels=levels, g_max_us=G_MAX_US, tiles=(lay,))
    decoders = {name: make_decoder(name) for name in DECODERS}
    n = lay.rows * lay.cols
    rng = np.random.default_rng(CV_SEED)
    per_age: dict[str, dict[str, list[float]]] = {age: {} for age in AGES}
    ordered_everywhere = {age: True for age in AGES}
    for s in range(seeds):
        devices, truth, weight, gen = program_chip(levels, tiles, SEED + s, programming, read_noise, lay)
        for age, t_ns in AGES.items():  # one committed read per device per campaign, campaigns in order
            reads = devices.read(t_ns, gen).double().numpy().reshape(tiles, 2 * n)
            clean = devices.expected_conductance(t_ns).double().numpy().reshape(tiles, 2 * n)  # no read noise
            # A second read t_read or 1 s later, not committed (the next campaigns see one read per device)
            second = {lag: devices.read(t_ns + lag, gen, commit=False).double().numpy().reshape(tiles, 2 * n)
                      for lag in (devices.statistics.params.t_read, SECOND)}
            for t in range(tiles):
                reading = ProbeReading(tile=0, t_ns=t_ns, g_pos=reads[t, :n].reshape(lay.rows, lay.cols),
                                       g_neg=reads[t, n:].reshape(lay.rows, lay.cols))
                w_reads, w_truth = reads[t, weight], truth[t, weight]
                total = w_reads.size
                rates = per_age[age]
                for name, decoder in decoders.items():
                    decoded = decoder.decode(reading, lay, config).levels[weight]
                    rates.setdefault(name, []).append(float((decoded != w_truth).sum()) / total)
                    if name == "drift_aware":
                        top = cut_errors(decoded, w_truth, levels - 1)
                best, cv, ordered = oracle(w_reads, w_truth, levels, rng)
                rates.setdefault("oracle", []).append(float((best != w_truth).sum()) / total)
                rates.setdefault("gap_top_cut", []).append((top - cut_errors(best, w_truth, levels - 1)) / total)
                rates.setdefault("oracle_cv", []).append(cv / total)
                others = {"oracle_noiseless": clean[t, weight]}
                for lag, again in zip(("t_read", "1s"), second.values()):
                    others[f"oracle_two_reads_{lag}"] = 0.5 * (w_reads + again[t, weight])
                for name, x in others.items():  # the oracle's cuts fitted to these values instead
                    cuts = np.maximum.accumulate(oracle_cuts(x, w_truth, levels))
                    rates.setdefault(name, []).append(threshold_errors(x, w_truth, cuts) / total)
                ordered_everywhere[age] &= ordered
    rows = []
    for age, t_ns in AGES.items():
        r = {k: np.asarray(v) for k, v in per_age[age].items()}
        gap = r["drift_aware"] - r["oracle"]
        std = (lambda x: float(x.std(ddof=1)) if x.size > 1 else 0.0)
        rows.append({"programming": programming, "read_noise_model": read_noise, "levels": levels, "age": age,
                     "age_s": t_ns / 1e9, "tiles": int(r["oracle"].size),
                     "weight_devices_per_tile": int(weight.sum()),
                     "nearest_mean": float(r["nearest"].mean()), "nearest_std": std(r["nearest"]),
                     "drift_aware_mean": float(r["drift_aware"].mean()), "drift_aware_std": std(r["drift_aware"]),
                     "drift_aware_max": float(r["drift_aware"].max()),
                     "oracle_mean": float(r["oracle"].mean()), "oracle_std": std(r["oracle"]),
                     "oracle_max": float(r["oracle"].max()),
                     "oracle_cv_mean": float(r["oracle_cv"].mean()),
                     "optimism_mean": float((r["oracle_cv"] - r["oracle"]).mean()),
                     "oracle_noiseless_mean": float(r["oracle_noiseless"].mean()),
                     "oracle_two_reads_t_read_mean": float(r["oracle_two_reads_t_read"].mean()),
                     "oracle_two_reads_1s_mean": float(r["oracle_two_reads_1s"].mean()),
                     "gap_mean": float(gap.mean()), "gap_std": std(gap), "gap_max": float(gap.max()),
                     "gap_share": float(gap.mean() / r["drift_aware"].mean()) if r["drift_aware"].mean() else 0.0,
                     "gap_top_cut_mean": float(r["gap_top_cut"].mean()),
                     "oracle_cuts_ordered": ordered_everywhere[age]})
    return rows


def markdown(rows: list[dict]) -> str:
    def pct(mean: float, std: float) -> str:
        digits = 3 if mean < 0.01 else 2
        return f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}%"

    def pct1(mean: float) -> str:
        return f"{100 * mean:.{3 if mean < 0.01 else 2}f}%"

    out = []
    for programming in dict.fromkeys(r["programming"] for r in rows):
        part = [r for r in rows if r["programming"] == programming]
        out += [f"Programming: {programming}; read noise: {part[0]['read_noise_model']}; "
                f"{part[0]['tiles']} tiles of {part[0]['weight_devices_per_tile']:,} weight devices per entry "
                f"(mean ± std over tiles).", "",
                "| K | age | nearest multiple | drift-aware | oracle (in-sample) | drift-aware − oracle "
                "(max over tiles) | of which at the top cut | oracle, cross-validated | oracle, 2 reads back to back "
                "| oracle, 2 reads 1 s apart | oracle, no read noise |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in part:
            out.append(f"| {r['levels']} | {r['age']} | {pct(r['nearest_mean'], r['nearest_std'])} "
                       f"| **{pct(r['drift_aware_mean'], r['drift_aware_std'])}** "
                       f"| {pct(r['oracle_mean'], r['oracle_std'])} "
                       f"| {100 * r['gap_mean']:+.2f} pt ({100 * r['gap_max']:+.2f}) "
                       f"| {100 * r['gap_top_cut_mean']:+.2f} pt "
                       f"| {pct1(r['oracle_cv_mean'])} | {pct1(r['oracle_two_reads_t_read_mean'])} "
                       f"| {pct1(r['oracle_two_reads_1s_mean'])} | {pct1(r['oracle_noiseless_mean'])} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 4, 2])
    parser.add_argument("--seeds", type=int, default=3, help="chips (generator seeds)")
    parser.add_argument("--tiles", type=int, default=3, help="tiles per chip")
    parser.add_argument("--programming", nargs="+", choices=("pv", "statistical"), default=["pv", "statistical"])
    parser.add_argument("--read-noise-model", default=PCMParameters().read_noise_model,
                        help="PCMParameters.read_noise_model (default: the model's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)  # 131k-device tensors: a thread pool only stalls on a busy machine
    start = time.perf_counter()
    rows = [row for programming in args.programming for levels in args.levels
            for row in run(levels, programming, args.read_noise_model, args.seeds, args.tiles, TileGeometry())]
    elapsed = time.perf_counter() - start
    if not all(r["oracle_cuts_ordered"] for r in rows):
        print("warning: some oracle cuts were not ordered; the oracle is then not the exact optimum", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, COLUMNS, args.out / "decoder_oracle.csv")
    table = markdown(rows)
    atomic_write_text(args.out / "decoder_oracle.md",
        "# The decoders against an oracle that reads once (bench/decoder_oracle.py)\n\n" + table
        + f"\nWritten by `.venv/bin/python bench/decoder_oracle.py` in {elapsed:.0f} s (one thread).\n")
    print(table)
    print(f"{len(rows)} rows in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
