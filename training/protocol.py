"""The literature's MNIST likelihood protocol: dynamically binarized digits, the test NLL by
importance sampling.

Published VAE likelihoods on MNIST (Burda et al., 2016, and most since) train on dynamically
binarized digits (each pass draws new binary digits, pixel ~ Bernoulli(grey level); done in
the training step, ``training.model.binarize``) and report −log p(x) on binary test digits,
estimated with the IWAE bound at k = 5000 importance samples over the 10,000 test digits.
Here the test set is binarized once, with ``TEST_SEED``, so every model is scored on the same
binary digits. Grey-level figures (the project's other tables) are not on this scale: grey
pixels under a Bernoulli likelihood keep an entropy floor that binary pixels do not have.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TEST_SEED = 0  # numpy's default_rng(0) binarizes the test set (one uniform draw per pixel)
K = 5000  # importance samples per test digit, as Burda et al. (2016) report
# What vae-train computes for a binarized preset before publishing (--binarized-k changes it):
# fewer samples, so the bound is a little looser than the k = 5000 figure of vae-eval.
TRAINING_K = 500
EXAMPLES = 10000  # every test digit
LOG_WEIGHTS_SEED = 0  # key of the log_weights signature's draws
DECODES_PER_CALL = 20000  # images × samples per log_weights call: bounds memory (~65 MB)


def binarize_test_set(images: np.ndarray, seed: int = TEST_SEED) -> np.ndarray:
    """Grey levels [N, 28, 28] in [0, 1] -> binary float32 digits, pixel ~ Bernoulli(grey),
    from one uniform draw per pixel of ``np.random.default_rng(seed)``: the same binary test
    set on every machine and every run."""
    uniform = np.random.default_rng(seed).uniform(size=images.shape)
    return (uniform < images).astype(np.float32)


def log_mean_exp(log_w: np.ndarray) -> np.ndarray:
    """log (1/k Σ_j exp w_j) of each row of ``log_w`` [N, k], computed stably: the IWAE
    estimate of each row's log p(x)."""
    log_w = np.asarray(log_w, np.float64)
    top = log_w.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.mean(np.exp(log_w - top), axis=1))


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values``: sample standard deviation / √n."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        raise ValueError("a standard error needs at least 2 values")
    return float(values.std(ddof=1) / np.sqrt(len(values)))


@dataclass(frozen=True)
class NllResult:
    """Test −log p(x) in nats per digit, as the metadata's ``evaluation["binarized"]``."""

    nll: float
    stderr: float  # standard error of the mean over the digits
    k: int
    examples: int
    test_seed: int
    seed: int  # key of the importance samples
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"test NLL (binarized MNIST, IWAE k={self.k}, {self.examples} digits): "
            f"{self.nll:.2f} ± {self.stderr:.2f} nats ({self.seconds:.0f} s)"
        )


def per_digit_nll(signature, images: np.ndarray, k: int, seed: int = LOG_WEIGHTS_SEED):
    """−(IWAE estimate of log p(x)) of each image through the export's ``log_weights``
    signature, a few images per call so memory stays bounded whatever ``k``: float64 [N]."""
    import tensorflow as tf  # here: the rest of the module is numpy, for the fast tests

    per_call = max(1, DECODES_PER_CALL // k)
    estimates = []
    for start in range(0, len(images), per_call):
        log_w = signature(
            images=tf.constant(images[start : start + per_call], tf.float32),
            samples=tf.constant(k, tf.int32),
            seed=tf.constant(seed, tf.int64),
        )["log_weights"].numpy()
        estimates.append(-log_mean_exp(log_w))
    return np.concatenate(estimates)


def binarized_nll(
    signature,
    grey_test_images: np.ndarray,
    k: int = K,
    examples: int = EXAMPLES,
    seed: int = LOG_WEIGHTS_SEED,
) -> NllResult:
    """The protocol's figure: mean −log p(x) of the first ``examples`` binarized test digits
    (binarized with ``TEST_SEED`` from all 10,000, so a subset is the full set's first rows),
    with its standard error."""
    binary = binarize_test_set(grey_test_images)[:examples]
    started = time.perf_counter()
    nll = per_digit_nll(signature, binary, k, seed)
    return NllResult(
        nll=round(float(nll.mean()), 3),
        stderr=round(standard_error(nll), 3),
        k=k,
        examples=len(binary),
        test_seed=TEST_SEED,
        seed=seed,
        seconds=round(time.perf_counter() - started, 1),
    )
