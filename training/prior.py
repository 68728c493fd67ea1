"""Latent priors: N(0, I), and Gaussian mixtures fitted to the encodings after training.

A VAE trained against N(0, I) leaves "holes" in latent space that decode to non-digits. Fitting
a mixture to the aggregate posterior (the training set's μ) per digit class gives a prior that
samples where the decoder has seen data, and per-class components give digit-conditional
sampling for free. Both are plain tensors, exported as constants of the SavedModel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from sklearn.mixture import GaussianMixture


@dataclass(frozen=True)
class MixturePrior:
    """Full-covariance Gaussian mixture; ``labels[k]`` is component k's digit (-1: none)."""

    log_weights: np.ndarray  # [K]
    means: np.ndarray  # [K, D]
    scale_tril: np.ndarray  # [K, D, D], Cholesky factors of the covariances
    labels: np.ndarray  # [K] int32

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])


def standard_normal(latent_dim: int) -> MixturePrior:
    """N(0, I) as a one-component mixture, so one sampling path serves every prior."""
    return MixturePrior(
        log_weights=np.zeros([1], np.float32),
        means=np.zeros([1, latent_dim], np.float32),
        scale_tril=np.eye(latent_dim, dtype=np.float32)[None],
        labels=np.full([1], -1, np.int32),
    )


def fit_per_digit(
    latents: np.ndarray, labels: np.ndarray, components_per_digit: int, seed: int
) -> MixturePrior:
    """Fit a ``components_per_digit``-component GMM to each digit's encodings; class weights
    are the classes' frequencies, so the whole mixture models the aggregate posterior."""
    log_weights, means, tril, component_labels = [], [], [], []
    for digit in range(10):
        points = latents[labels == digit].astype(np.float64)
        gmm = GaussianMixture(
            n_components=components_per_digit,
            covariance_type="full",
            reg_covar=1e-4,
            random_state=seed,
        ).fit(points)
        log_weights.append(np.log(gmm.weights_) + math.log(len(points) / len(latents)))
        means.append(gmm.means_)
        tril.append(np.linalg.cholesky(gmm.covariances_))
        component_labels.append(np.full(components_per_digit, digit))
    return MixturePrior(
        log_weights=np.concatenate(log_weights).astype(np.float32),
        means=np.concatenate(means).astype(np.float32),
        scale_tril=np.concatenate(tril).astype(np.float32),
        labels=np.concatenate(component_labels).astype(np.int32),
    )


def sample(
    prior: MixturePrior,
    count: tf.Tensor,
    seed: tf.Tensor,
    temperature: tf.Tensor,
    digit: tf.Tensor | None = None,
) -> tf.Tensor:
    """``count`` latent codes drawn with stateless ops: the same seed gives the same codes in
    any process. Temperature scales every component's σ; ``digit`` keeps its components only."""
    seed = tf.cast(seed, tf.int64)
    log_weights = tf.constant(prior.log_weights)
    if digit is not None:
        mask = tf.equal(tf.constant(prior.labels), tf.cast(digit, tf.int32))
        log_weights = tf.where(mask, log_weights, tf.fill(tf.shape(log_weights), -np.inf))
    component = tf.random.stateless_categorical(
        log_weights[None, :], count, seed=tf.stack([seed, tf.constant(1, tf.int64)])
    )[0]
    epsilon = tf.random.stateless_normal(
        tf.stack([count, prior.means.shape[1]]), seed=tf.stack([seed, tf.constant(2, tf.int64)])
    )
    means = tf.gather(tf.constant(prior.means), component)
    tril = tf.gather(tf.constant(prior.scale_tril), component)
    return means + temperature * tf.linalg.matvec(tril, epsilon)


def log_density(prior: MixturePrior, z: tf.Tensor) -> tf.Tensor:
    """log p(z) under the mixture, for z [..., D] (used by the likelihood bounds)."""
    d = prior.means.shape[1]
    # Precision factors turn each Mahalanobis distance into one matrix product.
    inv_tril = np.linalg.inv(prior.scale_tril.astype(np.float64)).astype(np.float32)
    log_det = np.sum(np.log(np.diagonal(prior.scale_tril, axis1=1, axis2=2)), axis=1)
    diff = z[..., None, :] - tf.constant(prior.means)  # [..., K, D]
    white = tf.einsum("kij,...kj->...ki", tf.constant(inv_tril), diff)
    log_normal = (
        -0.5 * tf.reduce_sum(tf.square(white), axis=-1)
        - tf.constant(log_det.astype(np.float32))
        - 0.5 * d * math.log(2 * math.pi)
    )
    return tf.reduce_logsumexp(log_normal + tf.constant(prior.log_weights), axis=-1)
