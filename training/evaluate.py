"""Evaluate an exported model through its SavedModel signatures (what the service serves).

Likelihood: −ELBO and an importance-weighted bound (IWAE, k samples) on the test set, and the
active latent units. Sample quality, judged by the project's own MNIST classifier: share of
random samples classified with confidence > 0.9, an Inception-style score, the Fréchet
distance to the test set in the classifier's feature space, per-digit accuracy of
digit-conditional samples, and the share of test digits whose reconstruction keeps its class.
``vae-train`` runs it on the staged export before publishing it, so the figures land in the
version's metadata and the pictures in its ``report/``; ``vae-eval`` runs it again on a
published version and writes into a folder of the user's choice (versions are never changed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from training import protocol, references, sample_quality
from training.classifier import classify, load_classifier
from vae_contract import Signature


@dataclass(frozen=True)
class EvalConfig:
    """How much to evaluate; the defaults take about a minute on a 2-core CPU."""

    iwae_k: int = 1000
    iwae_examples: int = 1000  # first N test digits for the IWAE bound (all: 10000)
    samples: int = 10000  # random samples for the classifier-based figures
    samples_per_digit: int = 1000
    seed: int = 0
    pictures: bool = True
    # The literature's protocol (training.protocol): the NLL of the binarized test digits
    # with this many importance samples (0: not computed), on the first N test digits.
    binarized_k: int = 0
    binarized_examples: int = protocol.EXAMPLES


def batched(fn, inputs: np.ndarray, batch: int) -> list[Any]:
    return [fn(inputs[i : i + batch]) for i in range(0, len(inputs), batch)]


def likelihood(signatures, images: np.ndarray, k: int, seed: int) -> dict[str, float]:
    """Monte Carlo −ELBO and the IWAE bound −log p(x) ≤ ..., in nats per test digit (k is
    recorded as ``iwae_k``)."""
    log_w = references.log_weights(signatures[Signature.LOG_WEIGHTS], images, k, seed)
    iwae = references.iwae_estimates(log_w)
    return {
        "test_neg_elbo_mc": round(float(-log_w.mean()), 3),
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

    encoded = batched(lambda c: signatures[Signature.ENCODE](images=tf.constant(c)), x_test, 1000)
    mu = np.concatenate([e["mu"].numpy() for e in encoded])
    figures["active_units"] = active_units(mu)
    figures.update(
        likelihood(signatures, x_test[: config.iwae_examples], config.iwae_k, config.seed)
    )
    if config.binarized_k:
        result = protocol.binarized_nll(
            signatures[Signature.LOG_WEIGHTS], x_test, config.binarized_k, config.binarized_examples
        )
        figures["binarized"] = result.to_dict()

    decode = signatures[Signature.DECODE]
    recon = np.concatenate(batched(lambda c: decode(z=tf.constant(c))["images"].numpy(), mu, 1000))
    recon_probs, _ = classify(classifier, recon)
    figures["reconstruction_class_kept"] = round(
        sample_quality.class_kept_share(recon_probs, y_test), 4
    )

    out = signatures[Signature.SAMPLE](
        count=tf.constant(config.samples),
        seed=tf.constant(config.seed, tf.int64),
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
    if Signature.SAMPLE_DIGIT in signatures:
        per_digit, digit_images = {}, []
        for digit in range(10):
            out = signatures[Signature.SAMPLE_DIGIT](
                count=tf.constant(config.samples_per_digit),
                seed=tf.constant(config.seed + digit, tf.int64),
                temperature=tf.constant(1.0),
                digit=tf.constant(digit),
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


def evaluate(
    signatures,
    x_test: np.ndarray,
    y_test: np.ndarray,
    config: EvalConfig,
    out_dir: Path | str | None,
    history: dict[str, list[float]],
) -> dict[str, Any]:
    """Evaluate a model through its signatures; with ``out_dir`` and ``config.pictures``, draw
    the report into ``out_dir/report/`` (listed under "pictures", relative to ``out_dir``)."""
    figures, arrays = evaluate_signatures(signatures, x_test, y_test, config)
    if out_dir is not None and config.pictures:
        from training import report  # matplotlib only when drawing

        out_dir = Path(out_dir)
        pictures = report.draw_all(out_dir, signatures, x_test, y_test, arrays, history)
        figures["pictures"] = sorted(str(p.relative_to(out_dir)) for p in pictures)
    return figures


def format_figures(figures: dict[str, Any]) -> str:
    """A short human summary of the evaluation."""
    lines = [
        f"  test NLL bound (IWAE, k={figures['iwae_k']}): {figures['test_nll_iwae']:.2f} nats "
        "(grey levels)",
        f"  test -ELBO (Monte Carlo): {figures['test_neg_elbo_mc']:.2f} nats",
        f"  active latent units: {figures['active_units']}",
        f"  samples classified with confidence > 0.9: {figures['sample_confident_share']:.1%}",
        f"  Inception-style score: {figures['sample_inception_score']:.2f}",
        f"  Frechet distance to test set: {figures['sample_frechet_distance']:.2f}",
        f"  reconstructions keeping their class: {figures['reconstruction_class_kept']:.1%}",
    ]
    if "digit_accuracy" in figures:
        lines.append(
            f"  digit-conditional samples of the right digit (worst digit): "
            f"{figures['digit_accuracy_min']:.1%}"
        )
    if "binarized" in figures:
        lines.insert(0, "  " + protocol.NllResult(**figures["binarized"]).describe())
    return "Evaluation:\n" + "\n".join(lines)
