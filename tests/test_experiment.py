"""The first-result command's input handling (the full run is `make accuracy-vs-time`)."""

from twin.study.experiments import accuracy_vs_time


def test_missing_mnist_folder_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no-such-mnist"
    code = accuracy_vs_time.main(["--dataset", "mnist", "--data-path", str(missing), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err


def test_existing_results_are_not_overwritten_without_force(tmp_path, capsys):
    (tmp_path / "accuracy-vs-time.md").write_text("earlier results")
    code = accuracy_vs_time.main(["--out", str(tmp_path)])
    assert code == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "accuracy-vs-time.md").read_text() == "earlier results"
