"""Latent codes: the ``sample_batch`` rows of a request's seed, paths between codes, traversals
along an axis, and the importance-weighted estimate of log p(x) placed among test digits.

Plain NumPy on small arrays (a path is at most ``VAE_MAX_STEPS`` codes of ``latent_dim``
numbers): computed on the event loop in microseconds, never on the inference thread.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from vae_contract import ANY_DIGIT, SIGNATURES, LatentAxes, ScoreReference, Signature

Method = Literal["linear", "spherical"]

SAMPLE_BATCH = SIGNATURES[Signature.SAMPLE_BATCH]

# A model exported without a score reference is still scored, with these (and no percentile).
FALLBACK_SCORE_SAMPLES = 1000
FALLBACK_SCORE_SEED = 0


def sample_rows(
    count: int, seed: int, temperature: float, digit: int | None
) -> dict[str, np.ndarray]:
    """``sample_batch`` inputs for one request: its ``count`` images are rows 0..count-1 of
    its seed, so the same request always gives the same digits, batched or not."""
    return SAMPLE_BATCH.arrays(
        seeds=np.full(count, seed),
        indices=np.arange(count),
        temperatures=np.full(count, temperature),
        digits=np.full(count, ANY_DIGIT if digit is None else digit),
    )


def interpolate(start: np.ndarray, end: np.ndarray, steps: int, method: Method) -> np.ndarray:
    """``steps`` codes from ``start`` to ``end`` (both included), float32 [steps, D].

    ``spherical`` follows the great circle between the two codes (slerp), as suits samples of
    a Gaussian prior: a straight line passes near the origin, where a 20-dimensional Gaussian
    has almost no mass, and decodes to blurry averages. Nearly parallel codes fall back to the
    straight line (slerp's formula divides by sin of their angle)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    start, end = start.astype(np.float64), end.astype(np.float64)
    if method == "spherical":
        norms = np.linalg.norm(start) * np.linalg.norm(end)
        cos = float(np.clip(start @ end / norms, -1.0, 1.0)) if norms > 0 else 1.0
        angle = np.arccos(cos)
        if np.sin(angle) > 1e-6:
            path = (np.sin((1 - t) * angle) * start + np.sin(t * angle) * end) / np.sin(angle)
            return path.astype(np.float32)
    return ((1 - t) * start + t * end).astype(np.float32)


def direction(
    axes: LatentAxes | None, basis: str, axis: int, latent_dim: int
) -> tuple[np.ndarray, float]:
    """The unit direction of ``axis`` and the training codes' standard deviation along it.

    ``principal``: the axis-th principal axis of the training encodings. ``dimension``: the
    axis-th latent coordinate; its spread is the diagonal of the codes' covariance
    Aᵀ diag(s²) A (A the axes, s their standard deviations), or 1 (the N(0, I) prior) for a
    model exported without its axes."""
    if basis == "principal":
        if axes is None:
            raise ValueError("this model was exported without latent_axes")
        return np.asarray(axes.axes[axis], np.float64), float(axes.stddev[axis])
    unit = np.zeros(latent_dim)
    unit[axis] = 1.0
    if axes is None:
        return unit, 1.0
    a = np.asarray(axes.axes, np.float64)
    s = np.asarray(axes.stddev, np.float64)
    return unit, float(np.sqrt(((a[:, axis] * s) ** 2).sum()))


def traverse(
    code: np.ndarray, unit: np.ndarray, spread: float, low: float, high: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``code + o·spread·unit`` for ``steps`` offsets ``o`` from ``low`` to ``high``
    (in standard deviations); returns (offsets, codes float32 [steps, D])."""
    offsets = np.linspace(low, high, steps)
    codes = code[None, :].astype(np.float64) + offsets[:, None] * spread * unit[None, :]
    return offsets, codes.astype(np.float32)


def percentile(score: float, reference: ScoreReference | None) -> float | None:
    """Where a score falls among the test digits' (0: below all, 100: above all); None without
    a reference, or for a score that is not a number."""
    if reference is None or math.isnan(score):
        return None
    return round(reference.percentile_of(score), 1)


def score_settings(reference: ScoreReference | None) -> tuple[int, int]:
    """(importance samples, seed) for ``log_weights``: the reference's, so a score compares
    with the test digits' exactly as they were computed."""
    if reference is None:
        return FALLBACK_SCORE_SAMPLES, FALLBACK_SCORE_SEED
    return reference.samples, reference.seed
