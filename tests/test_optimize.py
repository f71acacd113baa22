"""twin optimize end to end on a short deployment (the search itself: tests/test_search.py)."""

import json

from twin.cli import main

SHORT = ["duration=4 d", "checkpoints.count=3", "evaluation.accuracy_samples=1", "network.sa_iterations=200",
         "network.sa_restarts=2"]


def _args(*extra):
    args = ["optimize", "scenarios/default.yaml", "--seeds", "1", "--workers", "1", *extra]
    for item in SHORT:
        args += ["--set", item]
    return args


def test_optimize_reports_a_feasible_interval_with_its_margin(tmp_path, capsys):
    out = tmp_path / "opt"
    code = main(_args("--accuracy-floor", "0.5", "--lo", "1 d", "--hi", "4 d", "--max-evaluations", "3",
                      "--out", str(out)))
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("feasible")
    result = json.loads((out / "optimize.json").read_text())
    assert result["feasible"] and result["best"]["min_accuracy"] >= 0.5 and result["margin"] >= 0
    assert len(result["evaluations"]) <= 3 and result["parameter"] == "interval"
    assert result["policy"] == "periodic" and "method" in result


def test_optimize_says_infeasible_plainly_and_exits_3(capsys):
    from twin.cli import INFEASIBLE
    assert INFEASIBLE == 3  # docs/errors.md: a change from the 0 of earlier versions
    assert main(_args("--accuracy-floor", "0.999", "--lo", "1 d", "--hi", "4 d", "--max-evaluations", "2")) == 3
    captured = capsys.readouterr()
    assert captured.out.startswith("infeasible")
    assert "no feasible value" in captured.err


def test_optimize_rejects_a_bad_range(capsys):
    assert main(_args("--accuracy-floor", "0.9", "--lo", "soon")) == 2
    assert "--lo" in capsys.readouterr().err
