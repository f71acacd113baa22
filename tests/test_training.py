from types import SimpleNamespace

import torch

from twin.toolchain.cache import model_sha256
from twin.toolchain.networks import build_network, count_parameters, crossbar_layers
from twin.toolchain.training import TrainingConfig, small_weight_penalty, train


def test_networks_have_the_specified_sizes():
    assert count_parameters(build_network("digits_cnn")) == 1446
    assert count_parameters(build_network("paper_mnist_cnn")) == 2886
    assert build_network("paper_mnist_cnn")(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_trained_network_is_accurate_and_respects_the_weight_bound(trained):
    assert trained.test_accuracy > 0.93
    for _, layer in crossbar_layers(trained.model):
        assert layer.weight.abs().max().item() <= trained.config.weight_bound + 1e-6


def test_penalty_pushes_weights_away_from_zero(digits, tmp_path):
    config = TrainingConfig(epochs=20)
    penalised = train(digits, config, cache_dir=tmp_path).model
    free = train(digits, TrainingConfig(epochs=20, small_weight_penalty=0.0), cache_dir=tmp_path).model
    eps = config.small_weight_eps
    assert small_weight_penalty(penalised, eps).item() < 0.5 * small_weight_penalty(free, eps).item()


def test_training_is_deterministic_and_cached(digits, tmp_path, trained):
    again = train(digits, TrainingConfig(), cache_dir=tmp_path / "fresh")
    assert not again.from_cache
    for (_, a), (_, b) in zip(crossbar_layers(again.model), crossbar_layers(trained.model)):
        assert torch.equal(a.weight, b.weight)
    cached = train(digits, TrainingConfig(), cache_dir=tmp_path / "fresh")
    assert cached.from_cache and cached.cache_key == again.cache_key
    assert cached.test_accuracy == again.test_accuracy
    assert cached.model_sha256 == again.model_sha256 == trained.model_sha256 == model_sha256(trained.model)
    assert train(digits, TrainingConfig(seed=1), cache_dir=tmp_path / "fresh").cache_key != again.cache_key


def _network(**overrides):
    """The fields prepare_network reads from a scenario's network section."""
    fields = dict(dataset="digits", data_path=None, architecture="digits_cnn", checkpoint=None, hwa=False,
                  epochs=None, sa_iterations=200, sa_restarts=1)
    return SimpleNamespace(**{**fields, **overrides})


def test_prepared_network_carries_the_model_sha256(trained, tmp_path):
    from twin.toolchain.prepare import prepare_network

    prepared = prepare_network(_network(), levels=8, seed=0, test_images=20)  # the session cache's network
    assert prepared.model_sha256 == trained.model_sha256 == model_sha256(prepared.model)
    checkpoint = tmp_path / "net.pt"
    torch.save(trained.model.state_dict(), checkpoint)
    loaded = prepare_network(_network(checkpoint=checkpoint), levels=8, seed=0, test_images=20)
    assert loaded.model_sha256 == trained.model_sha256
