"""Inference traffic on the whole chip: time availability against the campaign records (exact),
the run's traffic outputs and energy books, and `twin compare` with traffic metrics."""

import csv
import json
from fractions import Fraction

import numpy as np
import pytest

from tiny_chip import tiny_chip
from twin.cli import main
from twin.scenario.schema import load_scenario
from twin.simulate import simulate, write_outputs
from twin.toolchain.specs import TileGeometry
from twin.traffic.parameters import PowerSchedule, Windowing, Workload
from twin.traffic.service import LayerShape, service_model
from twin.traffic.setup import TrafficSetup

SHORT = ["duration=2 d", "checkpoints.count=2", "evaluation.accuracy_samples=1", "network.sa_iterations=200",
         "network.sa_restarts=2"]
TRAFFIC = ["traffic.rate=5000 /s", "traffic.windows.steady=4", "traffic.windows.length=100 ms"]


def tiny_traffic(workload: Workload, power: PowerSchedule = PowerSchedule()) -> TrafficSetup:
    """The tiny chip's one layer (6 inputs, 4 outputs on two 4 x 4 tiles), 1 us per MVM."""
    service = service_model([LayerShape("fc", 4, 6, 1, 0)], TileGeometry(4, 4, 2), mvm_ns=1000, mvm_j=1e-9,
                            digital_op_ns=1, digital_op_j=0.0, lanes=4)
    return TrafficSetup(service, workload, power, Windowing(), windowed=False)


def test_time_availability_equals_one_minus_the_campaign_windows_exactly():
    """(d) One replica, windows that do not overlap: availability from the tiles' busy events is
    exactly 1 - (campaign windows from the campaign records + the initial programming) / duration."""
    run = tiny_chip(traffic=tiny_traffic(Workload(rate=200_000.0)), duration_ns=5_500_000)
    run.run()
    rows = run.observers.campaigns.ordered()
    assert len({r.campaign for r in rows}) == 5 and all(r.unavailable_ns > 0 for r in rows)
    windows = sum(r.unavailable_ns for r in rows) + run.chip.deployed_at_ns
    expected = float(1 - Fraction(windows, 5_500_000))
    assert run.observers.availability.availability(5_500_000) == expected
    figures = run.traffic.figures
    assert figures["requests"]["preempted"] > 0  # the windows did interrupt requests in service
    assert 0 < figures["availability_requests"] < 1


def test_two_replicas_keep_the_network_available_while_one_is_corrected():
    # periodic arrivals: the first request arrives at t = 0, while the chip is being programmed
    run = tiny_chip(traffic=tiny_traffic(Workload(arrivals="periodic", rate=200_000.0, replicas=2)), tiles=4,
                    duration_ns=5_500_000)
    run.run()
    rows = run.observers.campaigns.ordered()
    assert {r.tile for r in rows} == {0, 1, 2, 3}  # both replicas corrected ...
    # ... one at a time: after the first replica is deployed, a complete copy can always serve
    first_deployed = max(end for start, end, tile in run.observers.availability.busy if start == 0 and tile == 0)
    assert 0 < first_deployed < run.chip.deployed_at_ns
    assert run.observers.availability.availability(5_500_000) == 1 - first_deployed / 5_500_000
    from twin.report.records import campaign_rows
    assert all(row["network_unavailable_ns"] == 0 and row["unavailable_ns"] > 0 for row in campaign_rows(run))
    starts = np.frombuffer(run.traffic.records.start, dtype=np.int64)
    assert starts[starts >= 0].min() >= first_deployed  # nothing is served by a replica not yet programmed


@pytest.fixture(scope="module")
def traffic_run(tmp_path_factory):
    scenario = load_scenario("scenarios/traffic.yaml", SHORT + TRAFFIC)
    result = simulate(scenario)
    return scenario, result, write_outputs(result, scenario, tmp_path_factory.mktemp("traffic") / "run")


def test_traffic_run_reports_latency_throughput_energy_and_both_availabilities(traffic_run):
    scenario, result, out = traffic_run
    summary = json.loads((out / "summary.json").read_text())
    traffic = summary["traffic"]
    assert set(summary["availability"]) == {"time", "requests"}
    assert 0 < summary["availability"]["requests"] <= 1 and 0 < summary["availability"]["time"] < 1
    service_s = traffic["service"]["request_s"]
    lat = traffic["latency_s"]
    assert service_s <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] and lat["estimated"] is True
    assert traffic["throughput_rps"] == pytest.approx(5000, rel=0.02)  # a 2-day run: served ~ offered
    assert traffic["windows"]["mode"] == "windowed" and traffic["windows"]["coverage"] < 0.01
    energy = summary["energy_j"]
    per = traffic["energy_per_inference_j"]
    # the ledger's inference energy is what the engine served, at the service model's price
    assert per["inference"] == pytest.approx(1.0856e-6, rel=1e-3)
    assert energy["mvm"] == pytest.approx(traffic["requests"]["served"] * per["mvm"], rel=1e-12)
    assert per["total"] == pytest.approx(per["inference"] + per["maintenance"] + per["static"])
    assert traffic["tops_per_w"]["inference"] > traffic["tops_per_w"]["with_maintenance_and_static"]
    rows = list(csv.DictReader((out / "service.csv").open()))
    assert [r["layer"] for r in rows] == ["conv1", "conv2", "fc"] and int(rows[0]["mvms"]) == 64
    campaigns = list(csv.DictReader((out / "campaigns.csv").open()))
    assert all(int(r["unavailable_ns"]) > 0 and r["replica"] == "0" for r in campaigns)
    # one replica: every moment a tile is held, the network is down
    assert all(r["network_unavailable_ns"] == r["unavailable_ns"] for r in campaigns)


def test_a_traffic_run_is_reproducible(traffic_run):
    scenario, result, _ = traffic_run
    again = simulate(scenario).summary
    first = dict(result.summary)
    for summary in (again, first):
        summary.pop("wall_s")
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_compare_shows_traffic_metrics(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "scenarios/traffic.yaml", "--policies", "gdc,periodic", "--workers", "1", "--out", str(out)]
    for item in SHORT + TRAFFIC:
        args += ["--set", item]
    assert main(args) == 0
    rows = {r["policy"]: r for r in csv.DictReader((out / "compare.csv").open())}
    for column in ("availability_requests_mean", "latency_p99_s_mean", "throughput_rps_mean",
                   "energy_per_inference_j_mean", "tops_per_w_mean"):
        assert rows["periodic"][column] and rows["gdc"][column], column
    assert float(rows["gdc"]["availability_requests_mean"]) >= float(rows["periodic"]["availability_requests_mean"])


@pytest.mark.parametrize("overrides, field", [
    (["policy.defer_queue=5", "policy.max_defer=1 s", "policy.defer_recheck=1 ns"], "policy.defer_recheck"),
    (["traffic.windows.tail=1 h"], "traffic.windows.tail"),
    (["policy.defer_queue=5"], "policy.max_defer"),  # 1 h of deferral at 20,000/s in one window
    (["traffic.arrivals=mmpp", "traffic.calm_mean=1 us", "traffic.burst_mean=1 us"], "traffic.calm_mean"),
])
def test_traffic_work_is_bounded_at_validate_time(overrides, field):
    from twin.scenario.schema import ScenarioError
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        load_scenario("scenarios/traffic.yaml", overrides)
