"""One training run: data, fit with progress bar and checkpoints, fitted priors, export."""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training import data as mnist_data
from training import prior as priors
from training.device import configure_device
from training.export import export_model
from training.model import VAE, KLWarmup, build_vae
from training.presets import Preset

log = logging.getLogger(__name__)
TEST_BATCH = 1000


@dataclass(frozen=True)
class RunPaths:
    """Where a run keeps its resumable state and its TensorBoard logs."""

    checkpoints: Path
    logs: Path

    @classmethod
    def for_run(cls, model_dir: Path, preset: Preset) -> RunPaths:
        return cls(
            checkpoints=Path(model_dir) / "checkpoints" / preset.name,
            logs=Path(model_dir) / "logs" / preset.name,
        )


def git_commit() -> str | None:
    """The checkout's commit, when training runs from one (recorded in the metadata)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def datasets(
    x_train: np.ndarray, x_test: np.ndarray, preset: Preset
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Shuffled training batches (reshuffled each epoch, seeded) and test batches."""
    train = (
        tf.data.Dataset.from_tensor_slices(x_train)
        .shuffle(len(x_train), seed=preset.seed, reshuffle_each_iteration=True)
        .batch(preset.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    test = tf.data.Dataset.from_tensor_slices(x_test).batch(TEST_BATCH)
    return train, test


def fit(
    vae: VAE,
    train: tf.data.Dataset,
    test: tf.data.Dataset,
    paths: RunPaths,
    resume: bool,
) -> dict[str, list[float]]:
    """Keras fit with a progress bar, test figures each epoch, TensorBoard, and per-epoch
    backups so an interrupted run continues with ``resume=True``."""
    if not resume and paths.checkpoints.exists():
        shutil.rmtree(paths.checkpoints)
    if resume and not paths.checkpoints.exists():
        log.warning("--resume: no checkpoint in %s, starting from scratch", paths.checkpoints)
    paths.logs.mkdir(parents=True, exist_ok=True)
    callbacks = [
        KLWarmup(vae.preset.kl_warmup_epochs),
        keras.callbacks.BackupAndRestore(str(paths.checkpoints), delete_checkpoint=True),
        keras.callbacks.TensorBoard(str(paths.logs)),
        keras.callbacks.CSVLogger(str(paths.logs / "history.csv"), append=resume),
    ]
    history = vae.fit(
        train,
        epochs=vae.preset.epochs,
        validation_data=test,
        callbacks=callbacks,
        shuffle=False,  # the dataset reshuffles itself, seeded
        # A live progress bar in a terminal; one line per epoch in logs (Docker, CI, files).
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return history.history


def encode_mean(vae: VAE, images: np.ndarray) -> np.ndarray:
    """μ for every image (batched; the encoder's mean is what the priors are fitted to)."""
    mu, _ = vae.encoder.predict(images, batch_size=TEST_BATCH, verbose=0)
    return mu


def fit_priors(
    vae: VAE, x_train: np.ndarray, y_train: np.ndarray
) -> tuple[priors.MixturePrior, priors.MixturePrior | None]:
    """The sampling prior and the per-digit prior (None when the preset disables it)."""
    preset = vae.preset
    digit_prior = None
    if preset.components_per_digit > 0:
        latents = encode_mean(vae, x_train)
        digit_prior = priors.fit_per_digit(
            latents, y_train, preset.components_per_digit, preset.seed
        )
    if preset.prior == "fitted":
        if digit_prior is None:
            raise ValueError("prior='fitted' needs components_per_digit > 0")
        return digit_prior, digit_prior
    if preset.prior != "standard":
        raise ValueError(f"unknown prior {preset.prior!r}")
    return priors.standard_normal(preset.latent_dim), digit_prior


def last_test_metrics(history: dict[str, list[float]]) -> dict[str, float]:
    """The final epoch's test −ELBO and its two terms (nats per example)."""
    return {
        "test_neg_elbo": round(history["val_loss"][-1], 3),
        "test_reconstruction": round(history["val_reconstruction"][-1], 3),
        "test_kl": round(history["val_kl"][-1], 3),
    }


def train(
    preset: Preset,
    model_dir: Path | str = "model",
    data_dir: Path | str | None = None,
    resume: bool = False,
    train_limit: int | None = None,
) -> Path:
    """Train ``preset`` on MNIST, export it, and return the version folder.

    ``train_limit`` trains on the first N training images only (quick runs and tests).
    """
    model_dir = Path(model_dir)
    print(configure_device(), flush=True)
    keras.utils.set_random_seed(preset.seed)
    mnist = mnist_data.load_mnist(data_dir)
    x_train = mnist_data.to_float(mnist.x_train[:train_limit])
    y_train = mnist.y_train[:train_limit]
    x_test = mnist_data.to_float(mnist.x_test)

    train_ds, test_ds = datasets(x_train, x_test, preset)
    vae = build_vae(preset, steps_per_epoch=math.ceil(len(x_train) / preset.batch_size))
    started = time.perf_counter()
    history = fit(vae, train_ds, test_ds, RunPaths.for_run(model_dir, preset), resume)
    prior, digit_prior = fit_priors(vae, x_train, y_train)
    seconds = time.perf_counter() - started

    metadata: dict[str, Any] = {
        "preset": preset.name,
        "hyperparameters": preset.to_dict(),
        "latent_dim": preset.latent_dim,
        "image_shape": [28, 28],
        "prior": {"kind": preset.prior, "components": prior.n_components},
        "supports_digit": digit_prior is not None,
        "dataset": {
            "name": "MNIST",
            "source": mnist.source,
            "train_examples": len(x_train),
            "test_examples": len(x_test),
            "sha256": mnist.checksums(),
        },
        "metrics": last_test_metrics(history),
        "epochs": preset.epochs,
        "training_seconds": round(seconds, 1),
        "history": {k: [round(v, 4) for v in vs] for k, vs in history.items()},
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "git_commit": git_commit(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    version_dir = export_model(vae, prior, digit_prior, model_dir, metadata)
    print(
        f"Exported {version_dir} after {seconds:.0f} s: test -ELBO "
        f"{metadata['metrics']['test_neg_elbo']:.2f} nats",
        flush=True,
    )
    return version_dir
