"""What every export carries for the latent explorer, computed at export in about a second:
the principal axes of the training codes (sliders) and how test digits score (a new image's
log p(x) is placed among them)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vae_contract import LatentAxes, ScoreReference, iwae_estimate

# log p(x) is estimated with k = 100 importance samples: the service scores one image in a few
# milliseconds, and 1000 test digits take about a second here.
SCORE_SAMPLES = 100
SCORE_SEED = 0
SCORE_EXAMPLES = 1000  # the first N test digits (about 100 of each class)
DECODES_PER_CALL = 20000  # images × samples per log_weights call: bounds memory (~65 MB)


def latent_axes(codes: np.ndarray) -> LatentAxes:
    """Principal axes of ``codes`` [N, D] (the training set's μ): their mean, the unit
    directions by decreasing variance, and the standard deviation along each."""
    codes = np.asarray(codes, dtype=np.float64)
    variances, vectors = np.linalg.eigh(np.cov(codes, rowvar=False))
    order = np.argsort(variances)[::-1]
    axes = vectors[:, order].T
    # An eigenvector's sign is arbitrary: point each axis along its largest component, so the
    # same codes always give the same sliders.
    largest = np.abs(axes).argmax(axis=1)
    axes *= np.sign(axes[np.arange(len(axes)), largest])[:, None]
    return LatentAxes(
        mean=codes.mean(axis=0).tolist(),
        axes=axes.tolist(),
        stddev=np.sqrt(np.clip(variances[order], 0.0, None)).tolist(),
    )


def log_weights(signature, images: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """The ``log_weights`` signature over ``images`` in chunks: float64 [N, samples]."""
    per_call = max(1, DECODES_PER_CALL // samples)
    chunks = [
        signature(
            images=tf.constant(images[start : start + per_call], tf.float32),
            samples=tf.constant(samples, tf.int32),
            seed=tf.constant(seed, tf.int64),
        )["log_weights"].numpy()
        for start in range(0, len(images), per_call)
    ]
    return np.concatenate(chunks).astype(np.float64)


def iwae_estimates(log_w: np.ndarray) -> np.ndarray:
    """``vae_contract.iwae_estimate`` of each row: the computation the service repeats."""
    return np.array([iwae_estimate(row.tolist()) for row in log_w])


def score_reference(
    signature,
    test_images: np.ndarray,
    samples: int = SCORE_SAMPLES,
    seed: int = SCORE_SEED,
    examples: int = SCORE_EXAMPLES,
) -> ScoreReference:
    """IWAE estimates of log p(x) for the first ``examples`` test digits through the export's
    ``log_weights`` signature, stored as their 0th..100th percentiles."""
    images = test_images[:examples]
    estimates = iwae_estimates(log_weights(signature, images, samples, seed))
    return ScoreReference(
        samples=samples,
        seed=seed,
        examples=len(images),
        percentiles=np.percentile(estimates, np.arange(101)).tolist(),
    )
