import os

import pytest

from twin.toolchain.data import load_digits
from twin.toolchain.training import TrainingConfig, train


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Every test trains into (and reuses) one session cache, never the user's .cache/."""
    path = tmp_path_factory.mktemp("pcm-twin-cache")
    os.environ["PCM_TWIN_CACHE"] = str(path)
    return path / "models"


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def trained(digits, model_cache):
    """The default digits CNN, trained once per test session."""
    return train(digits, TrainingConfig(), cache_dir=model_cache)
