"""Training is bit-identical whatever the thread count, library code leaves torch's global state
alone, and the model cache lives where it should under a key that names everything training
depends on."""

import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from twin.toolchain import training
from twin.toolchain.cache import default_cache_dir, model_sha256, save_atomically
from twin.toolchain.networks import build_network
from twin.toolchain.training import TrainingConfig, cache_key, single_threaded, train

SMALL = TrainingConfig(epochs=3)

# Run in a fresh interpreter: the cache is cold (its own PCM_TWIN_CACHE) and the thread count is
# set before anything runs, both through OMP_NUM_THREADS and torch.set_num_threads.
_CHILD = """
import json, sys
import torch
torch.set_num_threads(int(sys.argv[1]))
from twin.toolchain.data import load_digits
from twin.toolchain.training import TrainingConfig, train
result = train(load_digits(), TrainingConfig(epochs=3))
print(json.dumps({"sha": result.model_sha256, "from_cache": result.from_cache,
                  "threads_after": torch.get_num_threads()}))
"""


def _train_in_subprocess(threads: int, cache: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PCM_TWIN_CACHE=str(cache))
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(threads)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_trained_weights_do_not_depend_on_the_thread_count(tmp_path):
    children = {threads: _train_in_subprocess(threads, tmp_path / f"cache-{threads}") for threads in (1, 2)}
    results = {}
    for threads, child in children.items():
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results[threads] = json.loads(out.strip().splitlines()[-1])
    assert not results[1]["from_cache"] and not results[2]["from_cache"]  # both trained, cold caches
    assert results[1]["sha"] == results[2]["sha"]
    assert results[2]["threads_after"] == 2  # the caller's thread count is restored


def test_single_threaded_restores_the_thread_count_also_on_errors():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with single_threaded():
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_library_code_leaves_the_global_rng_alone(digits, tmp_path):
    from twin.toolchain.aihwkit_bridge import aihwkit_accuracy

    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = build_network("digits_cnn", seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(5)  # another global state: the network's initial weights depend on the seed only
    assert model_sha256(build_network("digits_cnn", seed=7)) == model_sha256(first)
    assert model_sha256(build_network("digits_cnn", seed=8)) != model_sha256(first)

    state = torch.get_rng_state()
    hwa = TrainingConfig(epochs=1, hwa=training.HWAConfig(epochs=1))
    trained = train(digits, hwa, cache_dir=tmp_path)  # digital training, then aihwkit noise injection
    assert not trained.from_cache
    assert torch.equal(torch.get_rng_state(), state)
    aihwkit_accuracy(trained.model, digits.x_test[:50], digits.y_test[:50], [3600.0], repeats=1, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_model_sha256_covers_names_dtypes_shapes_and_bits():
    state = {"b": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": torch.ones(3)}
    digest = model_sha256(state)
    assert len(digest) == 64 and digest == model_sha256(dict(reversed(list(state.items()))))
    assert model_sha256({**state, "b": state["b"].t().contiguous().t()}) == digest  # layout is not content
    flipped = state["a"].clone()
    flipped.view(torch.int32)[0] ^= 1  # one bit
    assert model_sha256({**state, "a": flipped}) != digest
    assert model_sha256({**state, "a": state["a"].double()}) != digest
    assert model_sha256({**state, "a": state["a"].reshape(1, 3)}) != digest
    assert model_sha256({"c" if k == "a" else k: v for k, v in state.items()}) != digest
    assert model_sha256({**state, "bf": torch.ones(2, dtype=torch.bfloat16)})  # any dtype hashes


def test_cache_dir_is_the_user_cache_unless_pcm_twin_cache_is_set(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.setenv("PCM_TWIN_CACHE", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit" / "models"
    monkeypatch.delenv("PCM_TWIN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # honoured on Linux
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert default_cache_dir() == Path(platformdirs.user_cache_dir("pcm-twin", appauthor=False)) / "models"
    assert not default_cache_dir().is_relative_to(Path.cwd())


def test_cache_key_names_code_torch_threads_data_and_config(digits, monkeypatch):
    key = cache_key(digits, SMALL)
    assert cache_key(digits, SMALL) == key
    assert cache_key(digits, TrainingConfig(epochs=4)) != key
    changes = [("TRAINING_CODE_VERSION", "old"), ("THREAD_POLICY", "2-threads"),
               ("_training_source_digest", lambda: "edited")]
    for name, value in changes:
        with monkeypatch.context() as patch:
            patch.setattr(training, name, value)
            assert cache_key(digits, SMALL) != key, name
    with monkeypatch.context() as patch:
        patch.setattr(torch, "__version__", "0.0.0")
        assert cache_key(digits, SMALL) != key
    other = dataclasses.replace(digits, x_train=digits.x_train.clone())
    other.x_train[0, 0, 0, 0] += 1 / 16
    assert cache_key(other, SMALL) != key


def test_a_damaged_cache_file_is_retrained_and_replaced(digits, tmp_path):
    first = train(digits, SMALL, cache_dir=tmp_path)
    path = tmp_path / f"{SMALL.network}-{first.cache_key}.pt"
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable cached network"):
        again = train(digits, SMALL, cache_dir=tmp_path)
    assert not again.from_cache and again.model_sha256 == first.model_sha256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached = train(digits, SMALL, cache_dir=tmp_path)
    assert cached.from_cache and cached.model_sha256 == first.model_sha256
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left behind


def test_atomic_save_leaves_nothing_behind_on_failure(tmp_path):
    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_atomically({"x": Unpicklable()}, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_run_does_not_depend_on_the_thread_count():
    """A sweep worker runs single-threaded, `twin run` with every core: the same scenario and seed
    must give the same summary (all but wall time), or a sweep could not match a local run."""
    from twin.scenario.schema import load_scenario
    from twin.simulate import simulate
    scenario = load_scenario("scenarios/default.yaml", ["duration=3 d", "checkpoints.count=4", "evaluation.accuracy_samples=2",
                                                        "network.sa_iterations=200", "network.sa_restarts=1"])
    summaries = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            summary = simulate(scenario).summary
            summary.pop("wall_s")
            summaries.append(json.dumps(summary, sort_keys=True))
    finally:
        torch.set_num_threads(previous)
    assert summaries[0] == summaries[1]
