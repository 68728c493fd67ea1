"""Sample-quality figures computed from the classifier's outputs (numpy/scipy only).

``probs`` are class probabilities [N, 10] and ``features`` the classifier's ``features``
activations [N, 128], both as returned by ``training.classifier.classify``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def _probabilities(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"expected probabilities [N, classes] with N > 0, got {probs.shape}")
    return probs


def _labels(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = _probabilities(probs)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels for {len(probs)} rows of probabilities")
    return probs.argmax(axis=1), labels


def confident_share(probs: np.ndarray, threshold: float = 0.9) -> float:
    """Share of rows whose largest class probability exceeds ``threshold``."""
    return float(np.mean(_probabilities(probs).max(axis=1) > threshold))


def inception_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """exp(mean KL(p(y|x) || p(y))): 1 when all rows agree, the class count at best (10)."""
    probs = _probabilities(probs)
    marginal = probs.mean(axis=0, keepdims=True)
    kl = np.sum(probs * (np.log(probs + eps) - np.log(marginal + eps)), axis=1)
    return float(np.exp(kl.mean()))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D].

    ||μa − μb||² + Tr(Σa + Σb − 2 (Σa Σb)^½), computed as the FID reference implementation
    (pytorch-fid) does, including its eps·I fallback for singular covariances.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected feature sets [N, D] and [M, D], got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least 2 rows for a covariance")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a = np.atleast_2d(np.cov(a, rowvar=False))
    sigma_b = np.atleast_2d(np.cov(b, rowvar=False))

    with warnings.catch_warnings():
        # Dead ReLU units make the covariances singular, so sqrtm warns on every call; the
        # result is checked below (finite, real) and agrees with an eigenvalue computation.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma_a @ sigma_b)
        if not np.isfinite(covmean).all():
            # Singular product: nudge both covariances off zero, as the reference does.
            offset = np.eye(len(sigma_a)) * eps
            covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(covmean):
        # Round-off gives tiny imaginary parts; large ones mean the result is meaningless.
        imaginary = np.max(np.abs(np.diagonal(covmean).imag))
        if imaginary > 1e-3:
            raise ValueError(f"matrix square root has imaginary component {imaginary:.3g}")
        covmean = covmean.real

    diff = mu_a - mu_b
    distance = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean)
    return float(max(distance, 0.0))  # a distance: round-off can dip just below zero


def class_kept_share(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows classified as their label (e.g. reconstructions keeping their digit)."""
    predicted, labels = _labels(probs, labels)
    return float(np.mean(predicted == labels))


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """For each label value present, the share of its rows classified as that label."""
    predicted, labels = _labels(probs, labels)
    return {
        int(label): float(np.mean(predicted[labels == label] == label))
        for label in np.unique(labels)
    }
