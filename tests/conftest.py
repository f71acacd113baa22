import pytest

from twin.data import load_digits
from twin.training import TrainingConfig, train


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def trained(digits, model_cache):
    """The default digits CNN, trained once per test session."""
    return train(digits, TrainingConfig(), cache_dir=model_cache)
