"""The shipped evaluation classifier (training/assets/): accurate on real MNIST, with the
features the Fréchet distance uses."""

from __future__ import annotations

import numpy as np
import pytest

from training.sample_quality import class_kept_share


def test_shipped_classifier_is_accurate_and_returns_features(data_dir):
    from training.classifier import DEFAULT_PATH, classify, load_classifier
    from training.data import DataError, load_mnist, to_float

    try:
        mnist = load_mnist(data_dir)
    except DataError as error:
        pytest.skip(f"MNIST not available: {error}")
    assert DEFAULT_PATH.stat().st_size < 2_000_000
    model = load_classifier()
    images, labels = to_float(mnist.x_test[:2000]), mnist.y_test[:2000]

    probs, features = classify(model, images, batch_size=500)

    assert probs.shape == (2000, 10)
    assert features.shape == (2000, 128)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert class_kept_share(probs, labels) >= 0.99
    # Same answers in other batch sizes and for uint8 grey levels (scaled by classify).
    again, _ = classify(model, mnist.x_test[:10])
    np.testing.assert_allclose(again, probs[:10], atol=1e-5)
