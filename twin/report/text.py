"""Plain-text reports: the summary table ``twin run`` prints."""

from __future__ import annotations

import textwrap

from twin.report.verdict import verdict

__all__ = ["summary_table"]


def summary_table(summary: dict, campaigns_at: list[int] | None = None) -> str:
    """The table ``twin run`` prints, then the report's verdict on this programming (its sentence
    says after how many campaigns the policy fell behind when ``campaigns_at``, timeline.csv's
    ``campaigns``, is given)."""
    acc = summary["accuracy"]
    energy = summary["energy_j"]
    lines = [
        f"scenario      {summary['scenario']['name']} (seed {summary['seed']}, policy {summary['policy']['name']})",
        f"accuracy      start {100 * acc[0]['accuracy']:.1f}%  min {100 * min(a['accuracy'] for a in acc):.1f}%  "
        f"end {100 * acc[-1]['accuracy']:.1f}%  (digital {100 * summary['digital_accuracy']:.1f}%)",
        f"left alone    end {_n(acc[-1].get('accuracy_gdc_only'), 100, '.1f')}% with GDC only, "
        f"{_n(acc[-1].get('accuracy_left_alone'), 100, '.1f')}% without (the same programming, never corrected)",
        f"campaigns     {summary['campaigns']}   pulses {summary['pulses']['total']:,} "
        f"(partial-SET {summary['pulses']['partial_set']:,}, RESET {summary['pulses']['reset']:,})",
        f"decoding      {_misreads(summary['misreads'])}; "
        f"{summary['displaced_devices']:,} held off their original level at the end",
        f"energy        total {energy['total']:.4g} J  (maintenance {summary['energy_maintenance_j']:.4g} J, "
        f"initial programming {energy['initial_programming']:.4g} J, static {energy['static']:.4g} J)",
        f"availability  time {100 * summary['availability']['time']:.6f}%  "
        f"(longest outage {summary['longest_unavailability_s']:.3g} s)",
    ]
    faults = summary.get("faults")
    if faults is not None:
        lines.append(_faults_line(faults))
    traffic = summary.get("traffic")
    if traffic is not None:
        lines += _traffic_lines(summary, traffic)
    lines.append(f"simulation    {summary['events']:,} events in {summary['wall_s']:.1f} s")
    lines.append(textwrap.fill(verdict(summary, campaigns_at).sentence, width=100))
    return "\n".join(lines)


def _faults_line(faults: dict) -> str:
    i, d, c, lost = faults["injected"], faults["detected"], faults["corrected"], faults["lost"]
    return (f"faults        injected: stuck low {i['stuck_low']:,}, stuck high {i['stuck_high']:,}, failed pulses "
            f"{i['failed_pulses']:,}, probe read errors {i['probe_read_errors']:,}, dead tiles {i['dead_tiles']}\n"
            f"              detected: faulty devices {d['faulty_devices']:,} ({d['stuck_devices']:,} stuck, "
            f"{d['false_alarms']:,} false alarms), dead tiles {d['dead_tiles']} ({d['false_dead_tiles']} false)\n"
            f"              corrected: pulse failures {c['pulse_failures']:,}, probe read errors "
            f"{c['probe_read_errors']:,}; lost: stuck weights {lost['stuck_weights']:,}, dead-tile weights "
            f"{lost['dead_tile_weights']:,}, probe misreads {lost['probe_misreads']:,}")


def _misreads(count: int | None) -> str:
    if count is None:
        return "no levels to misread (analog targets)"
    return f"{count:,} devices misread over all campaigns"


def _n(value: float | None, scale: float = 1.0, spec: str = ".3g") -> str:
    """A figure for the table; '-' where the run has none (nothing served: null in summary.json)."""
    return "-" if value is None else format(scale * value, spec)


def _traffic_lines(summary: dict, traffic: dict) -> list[str]:
    lat, req, e = traffic["latency_s"], traffic["requests"], traffic["energy_per_inference_j"]
    tops = traffic["tops_per_w"]
    estimated = " (estimated from windows; max is a lower bound)" if lat["estimated"] else ""
    return [
        f"requests      {req['arrived']:,.0f} arrived, {req['served']:,.0f} served, {req['dropped']:,.0f} dropped, "
        f"{req['preempted']:,.0f} preempted; by requests {_n(summary['availability']['requests'], 100, '.6f')}% "
        "served without waiting on maintenance",
        f"latency       mean {_n(lat['mean'], 1e6)} us  p50 {_n(lat['p50'], 1e6)}  p95 {_n(lat['p95'], 1e6)}  "
        f"p99 {_n(lat['p99'], 1e6)}  max {_n(lat['max'], 1e6, '.4g')} us{estimated}",
        f"throughput    {traffic['throughput_rps']:,.1f} requests/s, offered load "
        f"{_n(traffic['service']['offered_load'])} of capacity {traffic['service']['capacity_rps']:,.0f}/s",
        f"per inference {_n(e['inference'], 1e9, '.4g')} nJ (MVM {_n(e['mvm'], 1e9, '.4g')}, digital "
        f"{_n(e['digital'], 1e9)}); maintenance {_n(e['maintenance'], 1e9)} nJ, static {_n(e['static'], 1e9, '.4g')} nJ",
        f"TOPS/W        {_n(tops['inference'])} inference only, {_n(tops['with_maintenance'])} with maintenance, "
        f"{_n(tops['with_maintenance_and_static'])} with static power too",
    ]
