"""The plain sentence at the top of a run's report: what happened on this programming, from the
numbers alone. The policy's accuracy is set against the same programming never corrected, with GDC
(``accuracy_gdc_only``) and without (``accuracy_left_alone``), measured in the same run at the
same checkpoints (docs/reports.md, "The verdict").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from twin.report.fmt import count, duration_s, pct, si

__all__ = ["MARGIN", "Verdict", "verdict"]

MARGIN = 0.01
"""How far (as a fraction, one percentage point) the policy's accuracy must be from the GDC-only
baseline before the verdict calls it above or below: closer is a tie (sampling noise of the
accuracy evaluation is of this order on the small test sets)."""


@dataclass(frozen=True)
class Verdict:
    kind: str  # no-accuracy | no-campaigns | below-baseline | above-baseline | matches-baseline | no-baselines
    sentence: str


def _value(row: dict, key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]  # str.capitalize would lower "GDC"


def _policy(summary: dict) -> str:
    policy = summary.get("policy") or {}
    gdc = " with GDC" if policy.get("gdc") else ""
    return f"the {policy.get('name', '?')} policy{gdc}"


def verdict(summary: dict, campaigns_at: list[int] | None = None) -> Verdict:
    """One sentence on the run of ``summary`` (a summary.json). ``campaigns_at``: campaigns finished
    by each checkpoint (timeline.csv ``campaigns``), to say after how many the policy fell behind;
    without it the sentence names the time instead."""
    rows = summary.get("accuracy") or []
    if not rows:
        return Verdict("no-accuracy", "No accuracy was recorded in this run (no checkpoints), so there is "
                                      "nothing to say about how the policy did.")
    first, last = rows[0], rows[-1]
    span = f"over {duration_s(summary.get('duration_s'))}"
    campaigns = int(summary.get("campaigns") or 0)
    gdc_end, left_end = _value(last, "accuracy_gdc_only"), _value(last, "accuracy_left_alone")
    end = _value(last, "accuracy")
    moved = f"accuracy went from {pct(_value(first, 'accuracy'))} to {pct(end)} {span}"
    if campaigns == 0:
        baseline = (f", against {pct(gdc_end)} for the same programming with GDC only and {pct(left_end)} left "
                    "alone" if gdc_end is not None and left_end is not None else "")
        return Verdict("no-campaigns", f"No correction campaign ran ({_policy(summary)}): {moved}{baseline}.")
    if gdc_end is None or end is None:
        return Verdict("no-baselines", f"With {campaigns:,} correction campaigns ({_policy(summary)}) {moved}; this "
                                       "folder does not record the same programming left alone or with GDC only "
                                       "(an older run), so the policy cannot be set against doing nothing.")
    maintenance = si(summary.get("energy_maintenance_j"), "J")
    against = f"{pct(end)} against {pct(gdc_end)} with GDC only and {pct(left_end)} left alone"
    if end < gdc_end - MARGIN:
        k = _below_from(rows)
        if campaigns_at is not None and (summary.get("policy") or {}).get("gdc"):
            # with GDC, until its first campaign the chip is the GDC-only baseline itself: a gap then is
            # sampling noise of the evaluation, not the policy
            while k < len(campaigns_at) - 1 and campaigns_at[k] == 0:
                k += 1
        done = campaigns_at[k] if campaigns_at is not None and k < len(campaigns_at) else None
        why = _why_below(summary)
        if done == 0:
            when = "before its first campaign"
            if not (summary.get("policy") or {}).get("gdc"):
                why = "this policy runs without global drift compensation, so between campaigns the weights drift " \
                      "as if left alone"
        elif done is not None:
            when = f"after {done:,} campaign{'s' if done != 1 else ''}"
        else:
            when = f"by {duration_s(rows[k].get('t_s'))}"
        return Verdict("below-baseline", f"Accuracy fell below the GDC-only baseline {when}: {why}. It ended at "
                                         f"{against}, after {campaigns:,} campaigns and {maintenance} of maintenance.")
    if end > gdc_end + MARGIN:
        return Verdict("above-baseline", f"{_capital(_policy(summary))} kept accuracy above doing nothing: "
                                         f"{against} at the end, with {campaigns:,} campaigns and {maintenance} of "
                                         "maintenance.")
    return Verdict("matches-baseline", f"{_capital(_policy(summary))} did no better and no worse than GDC "
                                       f"alone (within {MARGIN * 100:g} point): {against} at the end; its "
                                       f"{campaigns:,} campaigns cost {maintenance} of maintenance.")


def _below_from(rows: list[dict]) -> int:
    """The first checkpoint from which the policy stays below the GDC-only baseline to the end: an
    early dip within sampling noise that recovers is not when it fell."""
    k = len(rows)
    while k > 0:
        acc, gdc = _value(rows[k - 1], "accuracy"), _value(rows[k - 1], "accuracy_gdc_only")
        if acc is None or gdc is None or acc >= gdc - MARGIN:
            break
        k -= 1
    return k


def _why_below(summary: dict) -> str:
    """Why a correcting policy ended below doing nothing, from the decoding and fault scores."""
    misreads, displaced = summary.get("misreads"), summary.get("displaced_devices") or 0
    lost = ((summary.get("faults") or {}).get("lost") or {})
    if misreads and displaced:
        return (f"each campaign rewrote misread devices at the wrong level ({count(misreads)} misreads in all; "
                f"{count(displaced)} devices held off their original level at the end)")
    if any(lost.values()):
        return (f"faults lost weights the corrections could not restore ({count(sum(lost.values()))} lost: "
                "see Faults)")
    return "the corrections held the weights no better than global drift compensation alone"
