"""Evaluate an exported model through its SavedModel signatures (what the service serves).

Likelihood: −ELBO and an importance-weighted bound (IWAE, k samples) on the test set, and the
active latent units. Sample quality, judged by the project's own MNIST classifier: share of
random samples classified with confidence > 0.9, an Inception-style score, the Fréchet
distance to the test set in the classifier's feature space, per-digit accuracy of
digit-conditional samples, and the share of test digits whose reconstruction keeps its class.
Figures go into the export's metadata; pictures into ``<version>/report/``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from training import sample_quality
from training.classifier import classify, load_classifier
from training.data import load_mnist, to_float
from training.export import update_metadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """How much to evaluate; the defaults take about a minute on a 2-core CPU."""

    iwae_k: int = 1000
    iwae_examples: int = 1000  # first N test digits for the IWAE bound (all: 10000)
    samples: int = 10000  # random samples for the classifier-based figures
    samples_per_digit: int = 1000
    seed: int = 0
    pictures: bool = True


def batched(fn, inputs: np.ndarray, batch: int) -> list[Any]:
    return [fn(inputs[i : i + batch]) for i in range(0, len(inputs), batch)]


def likelihood(signatures, images: np.ndarray, k: int, seed: int) -> dict[str, float]:
    """Monte Carlo −ELBO and the IWAE bound −log p(x) ≤ ..., in nats per test digit."""
    per_call = max(1, 20000 // k)  # bounds memory: per_call × k decoded images at once

    def weights(chunk: np.ndarray) -> np.ndarray:
        out = signatures["log_weights"](
            images=tf.constant(chunk), samples=tf.constant(k), seed=tf.constant(seed, tf.int64)
        )
        return out["log_weights"].numpy().astype(np.float64)

    log_w = np.concatenate(batched(weights, images, per_call))
    iwae = np.logaddexp.reduce(log_w, axis=1) - math.log(k)
    return {
        "test_neg_elbo_mc": round(float(-log_w.mean()), 3),
        f"test_nll_iwae_k{k}": round(float(-iwae.mean()), 3),
        "test_nll_iwae": round(float(-iwae.mean()), 3),
        "iwae_k": k,
        "iwae_examples": len(images),
    }


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across the data (Burda et al., 2016)."""
    return int(np.sum(mu.var(axis=0) > threshold))


def evaluate_signatures(
    signatures, x_test: np.ndarray, y_test: np.ndarray, config: EvalConfig
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """All figures for one model, and the arrays the pictures are drawn from."""
    classifier = load_classifier()
    started = time.perf_counter()
    figures: dict[str, Any] = {}

    encoded = batched(lambda c: signatures["encode"](images=tf.constant(c)), x_test, 1000)
    mu = np.concatenate([e["mu"].numpy() for e in encoded])
    figures["active_units"] = active_units(mu)
    figures.update(likelihood(signatures, x_test[: config.iwae_examples], config.iwae_k,
                              config.seed))

    recon = np.concatenate(
        batched(lambda c: signatures["decode"](z=tf.constant(c))["images"].numpy(), mu, 1000)
    )
    recon_probs, _ = classify(classifier, recon)
    figures["reconstruction_class_kept"] = round(
        sample_quality.class_kept_share(recon_probs, y_test), 4
    )

    out = signatures["sample"](
        count=tf.constant(config.samples), seed=tf.constant(config.seed, tf.int64),
        temperature=tf.constant(1.0),
    )
    samples = out["images"].numpy()
    probs, features = classify(classifier, samples)
    _, test_features = classify(classifier, x_test)
    figures["samples"] = config.samples
    figures["sample_confident_share"] = round(sample_quality.confident_share(probs, 0.9), 4)
    figures["sample_inception_score"] = round(sample_quality.inception_score(probs), 3)
    figures["sample_frechet_distance"] = round(
        sample_quality.frechet_distance(features, test_features), 3
    )

    arrays = {"samples": samples, "mu": mu, "recon": recon}
    if "sample_digit" in signatures:
        per_digit, digit_images = {}, []
        for digit in range(10):
            out = signatures["sample_digit"](
                count=tf.constant(config.samples_per_digit),
                seed=tf.constant(config.seed + digit, tf.int64),
                temperature=tf.constant(1.0), digit=tf.constant(digit),
            )
            images = out["images"].numpy()
            digit_probs, _ = classify(classifier, images)
            per_digit[str(digit)] = round(float(np.mean(digit_probs.argmax(1) == digit)), 4)
            digit_images.append(images[:10])
        figures["digit_accuracy"] = per_digit
        figures["digit_accuracy_min"] = min(per_digit.values())
        arrays["digits"] = np.stack(digit_images)
    figures["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    return figures, arrays


def evaluate_export(
    version_dir: Path | str, data_dir: Path | str | None = None, config: EvalConfig | None = None
) -> dict[str, Any]:
    """Evaluate an export, write its report pictures, and merge the figures into its metadata."""
    config = config or EvalConfig()
    version_dir = Path(version_dir)
    mnist = load_mnist(data_dir)
    x_test, y_test = to_float(mnist.x_test), mnist.y_test
    loaded = tf.saved_model.load(str(version_dir))
    figures, arrays = evaluate_signatures(loaded.signatures, x_test, y_test, config)
    if config.pictures:
        from training import report  # matplotlib only when drawing

        pictures = report.draw_all(version_dir, loaded.signatures, x_test, y_test, arrays)
        figures["pictures"] = sorted(str(p.relative_to(version_dir)) for p in pictures)
    update_metadata(version_dir, evaluation=figures)
    print(format_figures(figures), flush=True)
    return figures


def format_figures(figures: dict[str, Any]) -> str:
    """A short human summary of the evaluation."""
    lines = [
        f"  test NLL bound (IWAE, k={figures['iwae_k']}): {figures['test_nll_iwae']:.2f} nats",
        f"  test -ELBO (Monte Carlo): {figures['test_neg_elbo_mc']:.2f} nats",
        f"  active latent units: {figures['active_units']}",
        f"  samples classified with confidence > 0.9: {figures['sample_confident_share']:.1%}",
        f"  Inception-style score: {figures['sample_inception_score']:.2f}",
        f"  Frechet distance to test set: {figures['sample_frechet_distance']:.2f}",
        f"  reconstructions keeping their class: {figures['reconstruction_class_kept']:.1%}",
    ]
    if "digit_accuracy" in figures:
        lines.append(f"  digit-conditional samples of the right digit (worst digit): "
                     f"{figures['digit_accuracy_min']:.1%}")
    return "Evaluation:\n" + "\n".join(lines)
