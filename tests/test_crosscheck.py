"""The twin against aihwkit's own inference path on the same trained network."""

import math

import numpy as np
import pytest

from twin.toolchain.readout import accuracy_over_time
from twin.toolchain.aihwkit_bridge import aihwkit_accuracy
from twin.toolchain.deploy import deploy_analog
from twin.toolchain.mapping import TileGeometry
from twin.units import DAY, HOUR, SECOND

REPEATS = 12


@pytest.mark.parametrize("t_ns", [HOUR, DAY])
def test_twin_matches_aihwkit_within_two_standard_errors(trained, digits, t_ns):
    x, y = digits.x_test, digits.y_test
    deployment = deploy_analog(trained.model, TileGeometry())
    ours = accuracy_over_time(deployment, x, y, [t_ns], repeats=REPEATS, seed=100)[0].accuracy
    theirs = float(np.mean(aihwkit_accuracy(trained.model, x, y, [t_ns / SECOND], REPEATS, seed=200)[t_ns / SECOND]))
    n = REPEATS * y.numel()
    se = math.sqrt(ours * (1 - ours) / n + theirs * (1 - theirs) / n)
    assert abs(ours - theirs) <= 2 * se, f"twin {ours:.4f} vs aihwkit {theirs:.4f} (2 SE = {2 * se:.4f})"
    assert ours < trained.test_accuracy  # drift and noise do cost something
