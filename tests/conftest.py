"""The test tiers, by folder, and the shared fixtures: real MNIST and a real (small) trained
SavedModel, made once per session.

- ``unit/``: the fast tier (``make test-fast``): no TensorFlow, no server process; seconds.
- ``model/``: TensorFlow and real MNIST: training, the export and its contract, the loader.
- ``e2e/``: a real trained model served: real servers, real HTTP clients, a real browser.
- ``reliability/``: hostile, slow and heavy clients against a real server process.

Everything outside ``unit/`` is marked ``slow``; ``-m "not slow"`` does not even import it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = Path(__file__).resolve().parent / "unit"
DATA_DIR = Path(os.environ.get("VAE_DATA_DIR", ROOT / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def mnist(data_dir):
    """Real MNIST, fetched the way a user's run fetches it (and cached in data/)."""
    from training.data import load_mnist

    return load_mnist(data_dir)


# A small evaluation (seconds), so the fixture model is published as `vae-train` publishes one:
# with evaluation figures and report pictures.
SMALL_EVALUATION = {"iwae_k": 50, "iwae_examples": 200, "samples": 1000, "samples_per_digit": 100}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, data_dir) -> Path:
    """A real model: the `tiny` preset trained on 20,000 real MNIST digits, evaluated (small
    settings) and exported."""
    from training.evaluate import EvalConfig
    from training.presets import get_preset
    from training.train import train

    base = tmp_path_factory.mktemp("model")
    train(
        get_preset("tiny").override(epochs=3),
        base,
        data_dir,
        train_limit=20000,
        evaluation=EvalConfig(**SMALL_EVALUATION),
    )
    return base


@pytest.fixture(scope="session")
def version_dir(model_dir) -> Path:
    return model_dir / "vae" / "1"


@pytest.fixture(scope="session")
def model_dir_without_digits(tmp_path_factory, data_dir) -> Path:
    """A real model exported without a per-digit prior (no sample_digit signature)."""
    from training.presets import get_preset
    from training.train import train

    base = tmp_path_factory.mktemp("model-no-digit")
    preset = get_preset("tiny").override(epochs=1, components_per_digit=0, prior="standard")
    train(preset, base, data_dir, train_limit=3000)
    return base


@pytest.fixture(scope="session")
def classifier():
    """The project's own MNIST classifier (training/assets/), to judge digits."""
    from training.classifier import load_classifier

    return load_classifier()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tier comes from the folder: every test outside ``unit/`` is slow."""
    for item in items:
        if FAST not in item.path.parents:
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast tier does not import the slow folders (TensorFlow alone takes seconds)."""
    if config.getoption("markexpr") != "not slow" or not collection_path.is_dir():
        return None
    tiers = {"model", "e2e", "reliability"}
    if collection_path.parent == FAST.parent and collection_path.name in tiers:
        return True
    return None
