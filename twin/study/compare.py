"""``twin compare``: several policies on the same chip, network and random streams.

Every policy runs with seeds ``seed .. seed + N - 1``; a given seed programs the same chip
identically under every policy (common random numbers: the programming, probe and evaluation
streams depend on the seed only), so differences between policies are the policies'.
Runs go to the run engine (:mod:`twin.study.engine`): Dask workers, one per core by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.chip.ledger import maintenance_energy
from twin.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, prepare_output_dir
from twin.report.columns import COMPARE_FIGURE_STATS, table_text
from twin.scenario.bounds import MAX_SEEDS
from twin.scenario.loader import did_you_mean, parse_yaml, read_input_file
from twin.scenario.schema import Scenario, ScenarioError, load_scenario
from twin.study.engine import Engine, RunTask, run_tasks
from twin.units import DAY, SECOND

__all__ = ["RUN_FIGURES", "PolicySpec", "parse_policies", "load_compare_file", "run_many", "compare", "policy_metrics",
           "write_compare", "COMPARE_FILES"]

COMPARE_FILES = ["compare.csv", "compare.json", "pareto.png"]


@dataclass(frozen=True)
class PolicySpec:
    """One entry of a comparison: a label and the scenario overrides that select the policy."""

    label: str
    overrides: tuple[str, ...]


def parse_policies(text: str, scenario: Scenario) -> list[PolicySpec]:
    """``none,gdc,periodic,periodic+gdc,...``: a name takes the policy's documented defaults, or
    the scenario's own ``policy`` section when the names match; ``+gdc`` switches GDC on."""
    specs = []
    for item in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, suffix = item.partition("+")
        if suffix not in ("", "gdc"):
            raise ScenarioError([("--policies", f"{item!r}: the only suffix is '+gdc'")])
        overrides = [] if name == scenario.policy.name else [f"policy.name={name}"]
        if suffix == "gdc":
            overrides.append("policy.gdc=true")
        specs.append(PolicySpec(item, tuple(overrides)))
    if not specs:
        raise ScenarioError([("--policies", "name at least one policy")])
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ScenarioError([("--policies", "a policy is listed twice")])
    return specs


COMPARE_KEYS = ("scenario", "policies", "seeds", "set")


def _override_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ScenarioError([(where, f"expected a list of key.path=value strings, e.g. ['network.hwa=true'], "
                                     f"got {value!r}")])
    return value


def load_compare_file(path: Path) -> tuple[Scenario, list[PolicySpec], int | None]:
    """A compare YAML: ``scenario: FILE``, ``seeds: N``, ``set: [overrides for all]``,
    ``policies: [{name: ..., label: ..., <policy params>, set: [overrides for this entry]}]``."""
    path = Path(path)
    raw = parse_yaml(read_input_file(path, "compare file"), str(path))  # the scenario loader's: no aliases, no duplicate keys
    if not isinstance(raw, dict) or "scenario" not in raw or "policies" not in raw:
        raise ScenarioError([(str(path), "expected keys scenario: FILE and policies: [...] (and optionally seeds: N)")])
    unknown = sorted(set(raw) - set(COMPARE_KEYS), key=str)
    if unknown:
        raise ScenarioError([(f"{path}:{k}", "unknown key" + did_you_mean(str(k), COMPARE_KEYS)) for k in unknown])
    seeds = raw.get("seeds")
    if seeds is not None and (not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_SEEDS):
        raise ScenarioError([("seeds", f"must be an integer from 1 to {MAX_SEEDS:,}, got {seeds!r}")])
    if not isinstance(raw["scenario"], str) or not raw["scenario"]:
        raise ScenarioError([("scenario", f"expected the path of a scenario file, got {raw['scenario']!r}")])
    if not isinstance(raw["policies"], list) or not raw["policies"]:
        raise ScenarioError([("policies", f"expected a non-empty list of {{name: ..., label: ...}} entries, "
                                          f"got {raw['policies']!r}")])
    scenario = load_scenario(path.parent / raw["scenario"], _override_list(raw.get("set", []), "set"))
    specs: list[PolicySpec] = []
    for i, entry in enumerate(raw["policies"]):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ScenarioError([(f"policies[{i}]", "expected a mapping with at least name:")])
        entry = dict(entry)
        label = str(entry.pop("label", entry["name"]))
        if label in [spec.label for spec in specs]:
            raise ScenarioError([(f"policies[{i}].label", f"{label!r} is an earlier entry's label too (their runs "
                                                          "would be merged); give each entry its own label")])
        extra = _override_list(entry.pop("set", []), f"policies[{i}].set")  # for this entry only, e.g. network.hwa=true
        overrides = [f"policy.name={entry.pop('name')}"] + [f"policy.{k}={json.dumps(v) if not isinstance(v, str) else v}"
                                                             for k, v in entry.items()] + extra
        scenario.with_overrides(overrides)  # validate now, naming the field, before anything runs
        specs.append(PolicySpec(label, tuple(overrides)))
    return scenario, specs, seeds


def run_many(tasks: list[tuple[Scenario, str, int]], workers: int | None = None,
             progress: Callable[[int, int], None] | None = None, scheduler: str | None = None,
             engine: Engine | None = None) -> list[dict]:
    """Run ``(scenario, label, seed)`` tasks on the run engine (:mod:`twin.study.engine`: Dask
    workers, or this process when ``workers == 1``; ``engine``, an open :class:`Engine` to reuse);
    results in task order, a failed run's error recorded in its entry."""
    runs = [RunTask(f"{i:06d}", scenario, label, seed) for i, (scenario, label, seed) in enumerate(tasks)]
    done = 0

    def arrived(_outcome) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(runs))

    outcomes = (engine.run(runs, on_result=arrived) if engine is not None
                else run_tasks(runs, workers, scheduler, on_result=arrived))
    return [{"label": o.label, "seed": o.seed, "summary": o.summary, "error": o.error} for o in outcomes]


def time_weighted_mean(accuracy: list[dict]) -> float:
    """Mean accuracy over deployment time: trapezoids between checkpoints, the first value held from 0."""
    t = np.array([a["t_s"] for a in accuracy])
    acc = np.array([a["accuracy"] for a in accuracy])
    area = acc[0] * t[0] + float(np.sum((acc[1:] + acc[:-1]) / 2 * np.diff(t)))
    return float(area / t[-1])


def _stats(values: list[float | None]) -> dict | None:
    """Mean, std (over seeds), min and max; None where a figure does not apply (misreads of analog weights)."""
    if any(v is None for v in values):
        return None
    arr = np.array(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "min": float(arr.min()), "max": float(arr.max())}


def _misread_rate(summary: dict) -> float | None:
    """Share of the weight devices a campaign misreads, on average (every campaign reads them all)."""
    if summary["misreads"] is None:
        return None
    reads = summary["campaigns"] * summary["chip"]["weight_devices"]
    return summary["misreads"] / reads if reads else 0.0


def _maintenance(s: dict) -> float:
    return maintenance_energy(s["energy_j"])  # the one definition (twin.chip.ledger)


RUN_FIGURES: dict[str, Callable[[dict], float | None]] = {
    "accuracy_start": lambda s: s["accuracy"][0]["accuracy"],
    "accuracy_final": lambda s: s["accuracy"][-1]["accuracy"],
    "accuracy_min": lambda s: min(a["accuracy"] for a in s["accuracy"]),
    "accuracy_time_weighted": lambda s: time_weighted_mean(s["accuracy"]),
    # the same programming never corrected (twin.chip.accuracy): absent from summaries before schema 3
    "accuracy_final_left_alone": lambda s: s["accuracy"][-1].get("accuracy_left_alone"),
    "accuracy_final_gdc_only": lambda s: s["accuracy"][-1].get("accuracy_gdc_only"),
    "energy_total_j": lambda s: s["energy_j"]["total"],
    "energy_maintenance_j": _maintenance,
    "energy_maintenance_per_day_j": lambda s: _maintenance(s) / (s["duration_s"] / (DAY / SECOND)),
    "pulses": lambda s: s["pulses"]["total"],
    "campaigns": lambda s: s["campaigns"],
    "misreads": lambda s: s["misreads"],
    "misread_rate_per_campaign": _misread_rate,
    "displaced_devices": lambda s: s["displaced_devices"],
    "availability_time": lambda s: s["availability"]["time"],
    "longest_unavailability_s": lambda s: s["longest_unavailability_s"],
}
"""The figures of one run, from its summary.json: what compare aggregates over seeds and what a
sweep's row holds (units in the names; accuracies are fractions)."""


def policy_metrics(summaries: list[dict]) -> dict:
    """The figures of one policy over its seeds."""
    return ({"seeds": [s["seed"] for s in summaries]}
            | {name: _stats([get(s) for s in summaries]) for name, get in RUN_FIGURES.items()}
            | traffic_metrics(summaries))


TRAFFIC_METRICS: dict[str, Callable[[dict], float]] = {
    "availability_requests": lambda s: s["availability"]["requests"],
    "latency_mean_s": lambda s: s["traffic"]["latency_s"]["mean"],
    "latency_p50_s": lambda s: s["traffic"]["latency_s"]["p50"],
    "latency_p99_s": lambda s: s["traffic"]["latency_s"]["p99"],
    "throughput_rps": lambda s: s["traffic"]["throughput_rps"],
    "dropped_share": lambda s: (s["traffic"]["requests"]["dropped"] / s["traffic"]["requests"]["arrived"]
                                if s["traffic"]["requests"]["arrived"] else None),
    "energy_per_inference_j": lambda s: s["traffic"]["energy_per_inference_j"]["total"],
    "maintenance_per_inference_j": lambda s: s["traffic"]["energy_per_inference_j"]["maintenance"],
    "tops_per_w": lambda s: s["traffic"]["tops_per_w"]["with_maintenance_and_static"],
}
"""The traffic figures `twin compare` reports beside accuracy and energy (runs with a traffic section)."""


def traffic_metrics(summaries: list[dict]) -> dict:
    if any("traffic" not in s for s in summaries):
        return {}
    out = {}
    for name, get in TRAFFIC_METRICS.items():
        values = [get(s) for s in summaries]
        out[name] = None if None in values else _stats(values)  # None: a run with nothing served
    return out


def compare(scenario: Scenario, specs: Sequence[PolicySpec], seeds: int = 1, workers: int | None = None,
            progress: Callable[[int, int], None] | None = None, scheduler: str | None = None) -> dict:
    """Run every policy with every seed; return the comparison (what compare.json holds)."""
    tasks = []
    # The network (data split, training, quantization) stays that of the first seed: the seeds
    # vary the chip only, i.e. they are independent programmings of the same deployment.
    pin = [] if scenario.network.seed is not None else [f"network.seed={scenario.seed}"]
    for spec in specs:
        for seed in range(scenario.seed, scenario.seed + seeds):
            tasks.append((scenario.with_overrides(list(spec.overrides) + pin + [f"seed={seed}"]), spec.label, seed))
    results = run_many(tasks, workers, progress, scheduler)
    policies = {}
    for spec in specs:
        mine = [r for r in results if r["label"] == spec.label]
        ok = [r["summary"] for r in mine if r["error"] is None]
        entry = {"overrides": list(spec.overrides),
                 "errors": [{"seed": r["seed"], "error": r["error"]} for r in mine if r["error"]]}
        if ok:
            entry["policy"] = ok[0]["policy"]
            entry.update(policy_metrics(ok))
            entry["accuracy_curves"] = [[a["accuracy"] for a in s["accuracy"]] for s in ok]
        policies[spec.label] = entry
    first_ok = next((r["summary"] for r in results if r["summary"]), None)
    return {"scenario": {"name": scenario.name, "sha256": scenario.sha256()}, "seeds": seeds,
            "order": [spec.label for spec in specs],
            "first_seed": scenario.seed, "duration_s": scenario.duration / SECOND,
            "checkpoints_s": [a["t_s"] for a in first_ok["accuracy"]] if first_ok else [],
            "policies": policies}


CSV_COLUMNS = COMPARE_FIGURE_STATS  # (figure, statistic over seeds): the data dictionary's (twin/report/columns.py)


def csv_text(result: dict) -> str:
    """One row per policy, in the comparison's order (compare.json's keys are sorted); columns and
    their order: the data dictionary's."""
    rows = []
    for label in result.get("order", list(result["policies"])):
        entry = result["policies"][label]
        rows.append({"policy": label} | {f"{k}_{s}": repr(entry[k][s]) if entry.get(k) is not None else ""
                                         for k, s in CSV_COLUMNS} | {"errors": len(entry["errors"])})
    return table_text("compare.csv", rows)


def pareto_png(result: dict) -> bytes:
    from twin.report.plots import plt, png_bytes

    fig, ax = plt.subplots(figsize=(7, 4.5))
    energies = [e["energy_maintenance_per_day_j"]["mean"] for e in result["policies"].values()
                if "energy_maintenance_per_day_j" in e]
    positive = [e for e in energies if e > 0]
    floor = min(positive) / 10 if positive else 1e-12  # zero-energy policies are drawn here on the log axis
    for label, entry in result["policies"].items():
        if "energy_maintenance_per_day_j" not in entry:
            continue
        x = max(entry["energy_maintenance_per_day_j"]["mean"], floor)
        y = 100 * entry["accuracy_min"]["mean"]
        yerr = 100 * entry["accuracy_min"]["std"]
        ax.errorbar([x], [y], yerr=[yerr], marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel(f"maintenance energy per day (J; zero drawn at {floor:.1g})")
    ax.set_ylabel(f"min accuracy (%), mean ± std, {result['seeds']} seeds")
    ax.set_title(f"{result['scenario']['name']}: energy vs worst-case accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return png_bytes(fig)


def write_compare(result: dict, out_dir: Path, force: bool = False) -> Path:
    out_dir = prepare_output_dir(Path(out_dir), COMPARE_FILES, force)
    atomic_write_text(out_dir / "compare.csv", csv_text(result))
    atomic_write_bytes(out_dir / "pareto.png", pareto_png(result))
    atomic_write_json(out_dir / "compare.json", result)
    return out_dir
