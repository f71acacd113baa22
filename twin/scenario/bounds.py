"""What a scenario may ask of the machine, checked at validate time: the bounds on the work an
input can cause (campaigns, evaluations, annealing steps, checkpoints, devices, seeds) and the
checks of the files it names (MNIST, a checkpoint), so that a bad input fails at once, naming
the field and the estimate, instead of running for days or failing an hour in (docs/scenarios.md,
"Bounds on the work a file can ask for")."""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path
from typing import Any

from twin.toolchain.idx import DatasetError, read_idx
from twin.units import YEAR, duration_label

__all__ = ["MAX_DURATION", "MAX_CAMPAIGNS", "MAX_EVALUATIONS", "MAX_SA_ITERATIONS", "MAX_CHECKPOINTS", "MAX_SEED",
           "MAX_DEVICES", "MAX_EPOCHS", "MAX_PULSES_PER_DEVICE", "MAX_SEEDS", "campaigns_estimate", "work_problem",
           "idx_problem", "is_torch_archive"]

MAX_DURATION = 200 * YEAR
"""Integer nanoseconds reach 292 years; a deployment is capped well inside that."""
MAX_CAMPAIGNS = 1_000_000
"""Correction campaigns a run may schedule (the default year has 365; one takes ~0.1 s to simulate)."""
MAX_EVALUATIONS = 1_000_000
"""Accuracy evaluations (checkpoints x samples) a run may ask for."""
MAX_SA_ITERATIONS = 10_000_000
"""Simulated-annealing iterations per layer (sa_iterations x (sa_restarts + 1); the default is 40,000)."""
MAX_CHECKPOINTS = 100_000
"""Checkpoints a run may schedule (each one a forward pass over the test set per sample)."""
MAX_SEED = 2**32 - 1
"""Seeds lie in 0 .. 2^32 - 1 (numpy's and torch's seed range everywhere a seed goes)."""
MAX_DEVICES = 2**25
"""Devices a chip may hold (33.5 M: 256 full tiles of 256 x 256), so an input cannot exhaust memory.
A run takes about 230 bytes per device at its peak (the device state with its 18 read-noise
components is 98; wear counters, the scorer's and the host's levels, buffers; scenarios/chip64.yaml,
8.4 M devices: 1.95 GB, docs/chip.md "chip64"), so the largest chip takes about 8 GB (the old
bound, 2^27, would have taken 31 GB); a resume checkpoint adds about 3 copies of the device state."""
MAX_EPOCHS = 1_000
"""Training epochs (the networks train for 15 to 60; an MNIST epoch takes tens of seconds)."""
MAX_PULSES_PER_DEVICE = 10_000
"""Program-and-verify pulses a device that never converges may take per campaign before it is given
up, max_iterations x (max_retries + 1) (the default is 200; a stuck device takes all of them)."""
MAX_SEEDS = 10_000
"""Seeds (programmings) per policy that ``twin compare`` and ``twin optimize`` may run."""


def campaigns_estimate(policy: Any, duration_ns: int) -> int:
    """Correction campaigns a built-in policy schedules over ``duration_ns`` (0 without a schedule
    or for a user class, whose schedule only its code knows); stops counting past MAX_CAMPAIGNS."""
    interval = getattr(policy, "interval", None)
    if getattr(policy, "class_", None) is not None or not isinstance(interval, int):
        return 0
    growth = getattr(policy, "growth", 1.0)
    if growth == 1.0:
        return duration_ns // interval
    gap, t, n = float(interval), float(interval), 0
    max_gap = getattr(policy, "max_interval", interval)
    while t <= duration_ns and n <= MAX_CAMPAIGNS:
        n += 1
        gap = min(gap * growth, max_gap)
        t += gap
    return n


def work_problem(scenario: Any) -> tuple[str, str] | None:
    """(field, message) for the first bound a scenario exceeds (campaigns, evaluations, annealing
    steps), or None."""
    campaigns = campaigns_estimate(scenario.policy, scenario.duration)
    if campaigns > MAX_CAMPAIGNS:
        count = f"about {campaigns:,}" if getattr(scenario.policy, "growth", 1.0) == 1.0 \
            else f"more than {MAX_CAMPAIGNS:,}"  # the geometric count stops there
        return "policy.interval", (f"schedules {count} correction campaigns over {duration_label(scenario.duration)}, "
                                   f"more than the {MAX_CAMPAIGNS:,} a run may hold; use a longer interval")
    samples = scenario.evaluation.accuracy_samples
    evaluations = len(scenario.checkpoint_times_ns()) * samples
    if evaluations > MAX_EVALUATIONS:
        return "evaluation.accuracy_samples", (f"{samples:,} samples at each checkpoint make {evaluations:,} accuracy "
                                               f"evaluations, more than {MAX_EVALUATIONS:,}")
    net = scenario.network
    iterations = net.sa_iterations * (net.sa_restarts + 1)
    if iterations > MAX_SA_ITERATIONS:
        return "network.sa_iterations", (f"sa_iterations x (sa_restarts + 1) = {iterations:,} annealing steps per "
                                         f"layer, more than {MAX_SA_ITERATIONS:,}")
    if net.epochs is not None and net.epochs > MAX_EPOCHS:
        return "network.epochs", f"{net.epochs:,} training epochs, more than {MAX_EPOCHS:,}"
    iterations, retries = scenario.chip.pulse_generator.max_iterations, scenario.policy.max_retries
    if iterations * (retries + 1) > MAX_PULSES_PER_DEVICE:
        field = "policy.max_retries" if retries + 1 > iterations else "chip.pulse_generator.max_iterations"
        return field, (f"chip.pulse_generator.max_iterations x (policy.max_retries + 1) = "
                       f"{iterations * (retries + 1):,} pulses a device that never converges takes per campaign "
                       f"before it is given up, more than {MAX_PULSES_PER_DEVICE:,}")
    return None


def idx_problem(path: Path) -> str | None:
    """What is wrong with an IDX (MNIST) file, or None; read once per file version (a compare
    re-validates its scenario for every run)."""
    info = path.stat()
    return _idx_problem(str(path), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _idx_problem(path: str, size: int, mtime_ns: int) -> str | None:
    try:
        read_idx(Path(path))
    except DatasetError as exc:
        return str(exc)
    return None


def is_torch_archive(path: Path) -> bool:
    """What torch.save writes (since torch 1.6): a zip archive with a data.pkl record."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
