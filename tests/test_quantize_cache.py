"""The cache of quantize_network (twin.toolchain.deploy): a hit is the computed result bit for bit,
any change of what determines the result misses, and a damaged file is recomputed, never used."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from twin.toolchain import deploy
from twin.toolchain.deploy import crossbar_weights, quantization_key, quantize_network
from twin.toolchain.networks import build_network
from twin.toolchain.quantize import AnnealSchedule

FAST = AnnealSchedule(iterations=60, restarts=1, patience=500)


@pytest.fixture(scope="module")
def model():
    return build_network("digits_cnn", seed=3)  # untrained weights quantize like trained ones


@pytest.fixture(scope="module")
def entry(model, tmp_path_factory):
    """The computed result (no cache) and the cache entry that a first cached call writes."""
    computed = quantize_network(model, 8, FAST, seed=5, use_cache=False)
    folder = tmp_path_factory.mktemp("quant-cache")
    quantize_network(model, 8, FAST, seed=5, cache_dir=folder)
    [path] = folder.iterdir()
    return _fingerprint(computed), path.name, path.read_text()


def _fingerprint(quant) -> bytes:
    """Everything quantize_network returns, as bytes: steps, level arrays (dtype and shape) and reports."""
    return pickle.dumps([(name, q.steps, q.k_plus, q.k_minus, q.report) for name, q in quant.items()])


def _files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _count_annealing(monkeypatch) -> list[int]:
    calls = [0]
    compute = deploy.compare_quantizers

    def counted(*args, **kwargs):
        calls[0] += 1
        return compute(*args, **kwargs)
    monkeypatch.setattr(deploy, "compare_quantizers", counted)
    return calls


def test_a_hit_returns_the_computed_result_bit_for_bit(model, entry, tmp_path, monkeypatch):
    computed, name, text = entry
    assert name.startswith("quant-") and name.endswith(".json")
    (tmp_path / name).write_text(text)
    calls = _count_annealing(monkeypatch)
    cached = quantize_network(model, 8, FAST, seed=5, cache_dir=tmp_path)
    assert calls[0] == 0 and _fingerprint(cached) == computed
    weights = crossbar_weights(model)
    for layer, q in cached.items():
        assert q.steps is q.report.sa_steps  # as computed: the layer's steps are its report's SA steps
        assert q.k_plus.dtype == np.int16 and q.k_plus.shape == weights[layer].shape
        for field in dataclasses.fields(q.report):  # exact types: ints stay ints, floats floats
            assert type(getattr(q.report, field.name)) is {"int": int, "float": float}.get(field.type, type(q.steps))


def test_a_miss_writes_one_whole_entry(model, entry, tmp_path):
    computed, name, text = entry
    assert _fingerprint(quantize_network(model, 8, FAST, seed=5, cache_dir=tmp_path)) == computed
    assert _files(tmp_path) == [name]  # no temporary file left beside it
    assert (tmp_path / name).read_text() == text


@pytest.mark.parametrize("change", ["levels", "seed", "schedule", "weights"])
def test_a_changed_key_misses(model, entry, tmp_path, monkeypatch, change):
    computed, name, text = entry
    (tmp_path / name).write_text(text)
    levels, seed, schedule, other = 8, 5, FAST, model
    if change == "levels":
        levels = 4
    elif change == "seed":
        seed = 6
    elif change == "schedule":
        schedule = dataclasses.replace(FAST, move_scale=0.02)
    else:
        other = build_network("digits_cnn", seed=3)
        with torch.no_grad():
            other[0].weight[0, 0, 0, 0] += 1e-6  # one weight, by a hair
    calls = _count_annealing(monkeypatch)
    quant = quantize_network(other, levels, schedule, seed=seed, cache_dir=tmp_path)
    assert calls[0] == len(quant) == 3 and len(_files(tmp_path)) == 2  # annealed again, a second entry
    if change == "levels":
        assert all(q.steps.levels == 4 and int(q.k_plus.max()) <= 4 for q in quant.values())


def test_the_key_covers_weights_levels_schedule_and_seed(model):
    weights = crossbar_weights(model)
    key = quantization_key(weights, 8, FAST, 0)
    assert key == quantization_key({k: v.copy() for k, v in weights.items()}, 8, FAST, 0)
    assert key != quantization_key(weights, 8, FAST, 1)
    assert key != quantization_key(weights, 7, FAST, 0)
    assert key != quantization_key(weights, 8, dataclasses.replace(FAST, restarts=2), 0)
    assert key != quantization_key(dict(reversed(weights.items())), 8, FAST, 0)  # layer i anneals with seed + i
    changed = {k: v.copy() for k, v in weights.items()}
    next(iter(changed.values())).flat[0] += 1e-9
    assert key != quantization_key(changed, 8, FAST, 0)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other key", "wrong type", "missing field"])
def test_a_damaged_cache_file_is_recomputed_and_replaced(model, entry, tmp_path, monkeypatch, damage):
    computed, name, text = entry
    path = tmp_path / name
    data = json.loads(text)
    if damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "truncated":
        path.write_text(text[:len(text) // 2])
    elif damage == "empty":
        path.write_text("")
    elif damage == "other key":
        data["key"] = "0" * 64
        path.write_text(json.dumps(data))
    elif damage == "wrong type":
        data["layers"][0]["report"]["sa_iterations"] = 12.0  # a float where an int belongs
        path.write_text(json.dumps(data))
    else:
        del data["layers"][-1]["report"]["sa_l1"]
        path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="ignoring unreadable cached quantization"):
        again = quantize_network(model, 8, FAST, seed=5, cache_dir=tmp_path)
    assert _fingerprint(again) == computed
    assert path.read_text() == text and _files(tmp_path) == [name]  # replaced by a whole, valid entry


def test_the_default_cache_is_under_pcm_twin_cache(model, entry, tmp_path, monkeypatch):
    computed, name, text = entry
    monkeypatch.setenv("PCM_TWIN_CACHE", str(tmp_path))
    (tmp_path / "quantization").mkdir()
    (tmp_path / "quantization" / name).write_text(text)
    calls = _count_annealing(monkeypatch)
    assert _fingerprint(quantize_network(model, 8, FAST, seed=5)) == computed and calls[0] == 0
