"""Sample-quality figures against hand computations, and the shipped classifier's accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from training.sample_quality import (
    class_kept_share,
    confident_share,
    frechet_distance,
    inception_score,
    per_class_accuracy,
)

PROBS = np.array(
    [
        [0.95, 0.05, 0.0],  # confident 0
        [0.10, 0.90, 0.0],  # exactly 0.9: not above the threshold
        [0.00, 0.20, 0.8],  # 2, unconfident
        [0.00, 0.01, 0.99],  # confident 2
    ]
)


def gaussian(rng: np.random.Generator, mean, std, n: int = 20000) -> np.ndarray:
    return rng.normal(size=(n, len(mean))) * np.asarray(std) + np.asarray(mean)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 8))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_shifted_gaussians_is_the_squared_mean_shift():
    rng = np.random.default_rng(1)
    a = gaussian(rng, [0, 0, 0, 0], [1, 1, 1, 1])
    b = gaussian(rng, [1, 2, 0, 0], [1, 1, 1, 1])
    assert frechet_distance(a, b) == pytest.approx(1 + 4, abs=0.15)


def test_frechet_distance_of_different_covariances():
    # Diagonal covariances: Tr(Σa + Σb − 2 (Σa Σb)^½) = Σ (σa − σb)² = (1 − 2)² + (2 − 1)² = 2.
    rng = np.random.default_rng(2)
    a = gaussian(rng, [0, 0], [1, 2])
    b = gaussian(rng, [0, 0], [2, 1])
    assert frechet_distance(a, b) == pytest.approx(2.0, abs=0.15)


def test_frechet_distance_is_symmetric_and_copes_with_singular_covariances():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(200, 6)) + 0.5
    a[:, 0] = 0.0  # a dead (always-zero) ReLU unit makes the covariance singular
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    assert np.isfinite(frechet_distance(a, a[:100]))


def test_frechet_distance_rejects_mismatched_dimensions():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def test_inception_score_is_the_class_count_for_confident_balanced_samples():
    probs = np.tile(np.eye(10), (3, 1))  # 10 classes, 3 confident samples each
    assert inception_score(probs) == pytest.approx(10.0, rel=1e-6)


def test_inception_score_is_one_when_every_row_is_the_same():
    probs = np.tile([0.5, 0.3, 0.2], (7, 1))
    assert inception_score(probs) == pytest.approx(1.0, abs=1e-9)


def test_inception_score_of_two_equal_confident_classes_is_two():
    assert inception_score(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(2.0, rel=1e-6)


def test_confident_share():
    assert confident_share(PROBS) == pytest.approx(0.5)
    assert confident_share(PROBS, threshold=0.5) == pytest.approx(1.0)


def test_class_kept_share():
    assert class_kept_share(PROBS, [0, 1, 2, 2]) == pytest.approx(1.0)
    assert class_kept_share(PROBS, [0, 0, 0, 2]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        class_kept_share(PROBS, [0, 1])


def test_per_class_accuracy_lists_only_labels_present():
    # Row predictions are 0, 1, 2, 2.
    assert per_class_accuracy(PROBS, np.array([0, 0, 2, 1])) == {0: 0.5, 1: 0.0, 2: 1.0}
    assert per_class_accuracy(PROBS, [2, 2, 2, 2]) == {2: 0.5}
