"""Plain-text reports: the summary table ``twin run`` prints."""

from __future__ import annotations

__all__ = ["summary_table"]


def summary_table(summary: dict) -> str:
    acc = summary["accuracy"]
    energy = summary["energy_j"]
    lines = [
        f"scenario      {summary['scenario']['name']} (seed {summary['seed']}, policy {summary['policy']['name']})",
        f"accuracy      start {100 * acc[0]['accuracy']:.1f}%  min {100 * min(a['accuracy'] for a in acc):.1f}%  "
        f"end {100 * acc[-1]['accuracy']:.1f}%  (digital {100 * summary['digital_accuracy']:.1f}%)",
        f"campaigns     {summary['campaigns']}   pulses {summary['pulses']['total']:,} "
        f"(partial-SET {summary['pulses']['partial_set']:,}, RESET {summary['pulses']['reset']:,})",
        f"decoding      {summary['misreads']:,} devices misread over all campaigns; "
        f"{summary['displaced_devices']:,} held off their original level at the end",
        f"energy        total {energy['total']:.4g} J  (maintenance {summary['energy_maintenance_j']:.4g} J, "
        f"initial programming {energy['initial_programming']:.4g} J, static {energy['static']:.4g} J)",
        f"availability  {100 * summary['availability']:.6f}%  (longest outage {summary['longest_unavailability_s']:.3g} s)",
        f"simulation    {summary['events']:,} events in {summary['wall_s']:.1f} s",
    ]
    return "\n".join(lines)
