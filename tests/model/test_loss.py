"""The loss and the importance weights against hand computations, without exporting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from training.model import importance_log_weights, negative_elbo_terms
from vae_contract import iwae_estimate


def test_negative_elbo_terms_match_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(2, 28, 28)).astype(np.float32)
    logits = rng.normal(size=(2, 28, 28)).astype(np.float32)
    mu = rng.normal(size=(2, 3)).astype(np.float32)
    log_var = rng.normal(size=(2, 3)).astype(np.float32)

    reconstruction, kl = negative_elbo_terms(x, logits, mu, log_var)

    for i in range(2):
        p = 1 / (1 + np.exp(-logits[i].astype(np.float64)))
        expected_rec = -np.sum(x[i] * np.log(p) + (1 - x[i]) * np.log(1 - p))
        expected_kl = sum(
            0.5 * (math.exp(g) + m * m - 1 - g) for m, g in zip(mu[i], log_var[i], strict=True)
        )
        assert reconstruction[i].numpy() == pytest.approx(expected_rec, rel=1e-4)
        assert kl[i].numpy() == pytest.approx(expected_kl, rel=1e-5)


def test_kl_is_zero_for_the_prior_itself():
    _, kl = negative_elbo_terms(
        np.zeros((1, 28, 28), np.float32),
        np.zeros((1, 28, 28), np.float32),
        np.zeros((1, 20), np.float32),
        np.zeros((1, 20), np.float32),
    )
    assert kl.numpy()[0] == pytest.approx(0.0)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def log_normal(z: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return np.sum(-0.5 * ((z - mu) ** 2 / var + np.log(2 * np.pi * var)), axis=-1)


class Linear:
    """A decoder z -> logits = z W + b [N, 28, 28], and an encoder with fixed outputs: small
    enough to compute by hand."""

    def __init__(self, rng: np.random.Generator, d: int):
        self.w = rng.normal(size=(d, 784)).astype(np.float32) * 0.3
        self.b = rng.normal(size=784).astype(np.float32)

    def decoder(self, z, training=False):
        return tf.reshape(tf.matmul(z, self.w) + self.b, [-1, 28, 28])


def test_log_weights_match_a_hand_computation():
    rng = np.random.default_rng(0)
    d, k, seed = 3, 5, 11
    images = rng.uniform(size=(2, 28, 28)).astype(np.float32)
    mu = rng.normal(size=(2, d)).astype(np.float32)
    log_var = rng.normal(size=(2, d)).astype(np.float32) * 0.5
    linear = Linear(rng, d)

    def encoder(x, training=False):
        return tf.constant(mu), tf.constant(log_var)

    def log_prior(z):  # N(0, I)
        return -0.5 * tf.reduce_sum(tf.square(z) + math.log(2 * math.pi), axis=-1)

    out = importance_log_weights(encoder, linear.decoder, log_prior, images, k, seed).numpy()

    # The documented draws: one ε per sample, keyed by (seed, 0), shared by the images.
    epsilon = tf.random.stateless_normal([k, 1, d], seed=[seed, 0]).numpy()[:, 0].astype(float)
    assert out.shape == (2, k)
    for i in range(2):
        var = np.exp(log_var[i].astype(float))
        z = mu[i] + np.sqrt(var) * epsilon  # [k, d]
        logits = z @ linear.w.astype(float) + linear.b
        x = images[i].reshape(-1).astype(float)
        log_px = np.sum(x * log_sigmoid(logits) + (1 - x) * log_sigmoid(-logits), axis=-1)
        expected = log_px + log_normal(z, 0.0, 1.0) - log_normal(z, mu[i], var)
        np.testing.assert_allclose(out[i], expected, rtol=1e-4)


def test_log_weights_are_exactly_log_px_when_q_is_the_prior_and_z_does_not_matter():
    """Then every weight is p(x) itself, and the IWAE estimate is exact for any k."""
    images = np.random.default_rng(1).uniform(size=(3, 28, 28)).astype(np.float32)

    def encoder(x, training=False):
        return tf.zeros([tf.shape(x)[0], 4]), tf.zeros([tf.shape(x)[0], 4])

    def decoder(z, training=False):  # logits 0.5 everywhere, whatever z
        return tf.fill([tf.shape(z)[0], 28, 28], 0.5)

    def log_prior(z):
        return -0.5 * tf.reduce_sum(tf.square(z) + math.log(2 * math.pi), axis=-1)

    out = importance_log_weights(encoder, decoder, log_prior, images, 7, 3).numpy()
    log_px = np.sum(images * log_sigmoid(0.5) + (1 - images) * log_sigmoid(-0.5), axis=(1, 2))
    np.testing.assert_allclose(out, np.repeat(log_px[:, None], 7, axis=1), rtol=1e-5)
    assert iwae_estimate(out[0].tolist()) == pytest.approx(log_px[0], rel=1e-5)


def test_an_images_log_weights_do_not_depend_on_the_other_images_in_the_call():
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(4, 28, 28)).astype(np.float32)
    linear = Linear(rng, 2)

    def encoder(x, training=False):
        flat = tf.reshape(x, [-1, 784])
        return flat[:, :2], flat[:, 2:4] - 1.0

    def log_prior(z):
        return -0.5 * tf.reduce_sum(tf.square(z) + math.log(2 * math.pi), axis=-1)

    together = importance_log_weights(encoder, linear.decoder, log_prior, images, 6, 9).numpy()
    for i in range(4):
        alone = importance_log_weights(
            encoder, linear.decoder, log_prior, images[i : i + 1], 6, 9
        ).numpy()
        np.testing.assert_allclose(alone[0], together[i], rtol=1e-6)


def test_mixture_log_density_matches_scipy():
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    from training import prior as priors

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(10), 30)
    prior = priors.fit_per_digit(rng.normal(size=(300, 3)) + labels[:, None], labels, 2, seed=0)
    z = rng.normal(size=(4, 5, 3)).astype(np.float32) * 3

    out = priors.log_density(prior, tf.constant(z)).numpy()

    covariances = prior.scale_tril @ prior.scale_tril.transpose(0, 2, 1)
    expected = logsumexp(
        [
            w + multivariate_normal(m, c).logpdf(z.astype(float))
            for w, m, c in zip(prior.log_weights, prior.means, covariances, strict=True)
        ],
        axis=0,
    )
    assert out.shape == (4, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-4)
