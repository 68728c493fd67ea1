"""One training run: data, fit with progress bar and checkpoints, fitted priors, export.

The export is assembled in a staging folder: SavedModel, explorer references, evaluation
figures and pictures, then the final metadata; only then is it renamed into
``<model-dir>/vae/<version>/``. The run's checkpoint is kept until that rename, so a run
stopped at any point (even during the evaluation) continues with ``resume=True``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from training import data as mnist_data
from training import export, protocol, references
from training import prior as priors
from training.distribute import configure_devices, is_chief, wait_for_all_workers, worker_name
from training.evaluate import EvalConfig, evaluate, format_figures
from training.model import VAE, KLWarmup, build_vae
from training.presets import DataKind, Preset, PriorKind
from training.stopping import stop_signals
from training.warmup import write_warmup_file
from vae_contract import IMAGE_SHAPE, DatasetInfo, ModelMetadata, PriorInfo, Signature

log = logging.getLogger(__name__)
TEST_BATCH = 1000
CHECKPOINTS = "checkpoints"
LOGS = "logs"


@dataclass(frozen=True)
class RunPaths:
    """Where a run keeps its resumable state and its logs: ``<model-dir>/checkpoints/<key>/``
    and ``<model-dir>/logs/<key>/``. The key is the preset's name and a hash of the whole
    configuration, so ``--resume`` only ever continues the same configuration."""

    key: str
    checkpoints: Path
    logs: Path

    @classmethod
    def for_run(
        cls,
        model_dir: Path | str,
        preset: Preset,
        train_limit: int | None,
        worker: str | None = None,
    ) -> RunPaths:
        key = f"{preset.name}-{preset.fingerprint(train_limit=train_limit)}"
        # Workers other than the chief keep their own copy of the state, beside the chief's.
        suffix = f".{worker}" if worker else ""
        model_dir = Path(model_dir)
        return cls(key, model_dir / CHECKPOINTS / f"{key}{suffix}", model_dir / LOGS / key)

    @property
    def history_csv(self) -> Path:
        return self.logs / "history.csv"

    @property
    def checkpoint_state(self) -> Path:
        return self.checkpoints / "training_metadata.json"  # written by BackupAndRestore

    def has_checkpoint(self) -> bool:
        return self.checkpoint_state.is_file()

    def describe_checkpoint(self, epochs: int) -> str:
        """One line on what ``--resume`` will do with this run's checkpoint."""
        if self.has_checkpoint():
            done = json.loads(self.checkpoint_state.read_text())["epoch"]
            return (
                f"Resuming from the checkpoint in {self.checkpoints} "
                f"({done} of {epochs} epochs done)"
            )
        name = self.key.rsplit("-", 1)[0]
        others = sorted(
            p.name
            for p in self.checkpoints.parent.glob(f"{name}-*")
            if p.is_dir() and not p.name.startswith(self.key)
        )
        note = f" ({', '.join(others)}: other configurations, not used)" if others else ""
        return f"No checkpoint of this configuration yet{note}; training from the start"


@dataclass(frozen=True)
class Trained:
    """What training produced: a single-device model and what was fitted after it."""

    vae: VAE
    prior: priors.MixturePrior
    digit_prior: priors.MixturePrior | None
    codes: np.ndarray  # μ of every training image
    history: dict[str, list[float]]
    seconds: float


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
    """Shuffled training batches (reshuffled each epoch, seeded) and test batches. Batches are
    global: a distribution strategy splits each among its replicas, and workers of a cluster
    take every n-th example (all shuffle with the same seed, so the shards partition it)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = (
        tf.data.Dataset.from_tensor_slices(x_train)
        .shuffle(len(x_train), seed=preset.seed, reshuffle_each_iteration=True)
        .batch(preset.batch_size)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
    test = tf.data.Dataset.from_tensor_slices(x_test).batch(TEST_BATCH).with_options(options)
    return train, test


def read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch figures from the run's CSV log, across interruptions: an epoch logged twice
    (stopped between its log line and its checkpoint, then run again) counts once, the last."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = {int(row.pop("epoch")): row for row in csv.DictReader(f)}
    epochs = sorted(rows)
    keys = rows[epochs[0]].keys() if epochs else []
    return {key: [round(float(rows[e][key]), 4) for e in epochs] for key in keys}


class StopAtSafePoint(keras.callbacks.Callback):
    """A pending Ctrl-C or SIGTERM stops training before the next step, or right after the
    epoch's checkpoint, never in the middle of writing one."""

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        stop_signals.check()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        stop_signals.check()


def fit(
    vae: VAE,
    train: tf.data.Dataset,
    test: tf.data.Dataset,
    paths: RunPaths,
    resume: bool,
    chief: bool,
) -> None:
    """Keras fit with a progress bar, test figures each epoch, and a checkpoint each epoch,
    so an interrupted run continues with ``resume=True``. The chief also writes TensorBoard
    logs and the CSV log the metadata's history is read from."""
    resuming = resume and paths.has_checkpoint()
    if resume and chief:
        print(paths.describe_checkpoint(vae.preset.epochs), flush=True)
    if not resuming and paths.checkpoints.exists():
        shutil.rmtree(paths.checkpoints)
    callbacks: list[keras.callbacks.Callback] = [
        KLWarmup(vae.preset.kl_warmup_epochs, vae.preset.kl_weight)
    ]
    if chief:
        paths.logs.mkdir(parents=True, exist_ok=True)
        callbacks += [
            keras.callbacks.TensorBoard(str(paths.logs)),
            # Before the checkpoint: a stop between the two logs an epoch that is run again,
            # which read_history counts once; the other order would lose its line.
            keras.callbacks.CSVLogger(str(paths.history_csv), append=resuming),
        ]
    callbacks += [
        # Kept after training, removed once the version is published (see train()). The
        # previous epoch's state is kept too, in case the process dies while writing.
        keras.callbacks.BackupAndRestore(
            str(paths.checkpoints), double_checkpoint=True, delete_checkpoint=False
        ),
        StopAtSafePoint(),  # last: after the checkpoint
    ]
    with stop_signals.deferred():
        vae.fit(
            train,
            epochs=vae.preset.epochs,
            validation_data=test,
            callbacks=callbacks,
            shuffle=False,  # the dataset reshuffles itself, seeded
            # A live progress bar in a terminal; one line per epoch in logs (Docker, CI, files).
            verbose=(1 if sys.stdout.isatty() else 2) if chief else 0,
        )


def single_device_copy(vae: VAE) -> VAE:
    """The trained weights in a model outside any distribution strategy: what follows
    training (priors, export, evaluation) then runs the same way for every strategy."""
    plain = VAE(vae.preset)
    plain(tf.zeros([1, *IMAGE_SHAPE]))
    plain.encoder.set_weights(vae.encoder.get_weights())
    plain.decoder.set_weights(vae.decoder.get_weights())
    if vae.pseudo_logits is not None and plain.pseudo_logits is not None:
        plain.pseudo_logits.assign(vae.pseudo_logits.numpy())
    return plain


def fit_priors(
    vae: VAE, codes: np.ndarray, y_train: np.ndarray
) -> tuple[priors.MixturePrior, priors.MixturePrior | None]:
    """The sampling prior and the per-digit prior (None when the preset has none), fitted
    to the training codes μ; a VampPrior is the one the model learned."""
    preset = vae.preset
    digit_prior = None
    if preset.components_per_digit > 0:
        digit_prior = priors.fit_per_digit(codes, y_train, preset.components_per_digit, preset.seed)
    if preset.prior is PriorKind.VAMP:
        means, log_vars = vae.encoder(vae.pseudo_inputs(), training=False)
        return priors.diagonal_mixture(means.numpy(), log_vars.numpy()), digit_prior
    if preset.prior is PriorKind.FITTED:
        assert digit_prior is not None  # the preset guarantees components_per_digit > 0
        return digit_prior, digit_prior
    return priors.standard_normal(preset.latent_dim), digit_prior


def last_test_metrics(history: dict[str, list[float]]) -> dict[str, float]:
    """The final epoch's test −ELBO and its two terms (nats per example)."""
    return {
        "test_neg_elbo": round(history["val_loss"][-1], 3),
        "test_reconstruction": round(history["val_reconstruction"][-1], 3),
        "test_kl": round(history["val_kl"][-1], 3),
    }


def export_version(
    model_dir: Path | str,
    trained: Trained,
    mnist: mnist_data.Mnist,
    train_examples: int,
    evaluation: EvalConfig | None,
) -> Path:
    """Assemble the version in a staging folder (SavedModel, TF Serving warm-up requests,
    explorer references, evaluation figures and pictures, metadata), then publish it; returns
    the version folder."""
    preset = trained.vae.preset
    x_test = mnist_data.to_float(mnist.x_test)
    with export.staging_folder(model_dir) as staging:
        export.write_savedmodel(staging, trained.vae, trained.prior, trained.digit_prior)
        write_warmup_file(staging, preset.latent_dim, trained.digit_prior is not None)
        # The staged SavedModel itself: the references are what the service will compute.
        started = time.perf_counter()
        signatures = tf.saved_model.load(str(staging)).signatures
        score_reference = references.score_reference(signatures[Signature.LOG_WEIGHTS], x_test)
        latent_axes = references.latent_axes(trained.codes)
        log.info("explorer references computed in %.1f s", time.perf_counter() - started)
        figures = {}
        if evaluation is not None:
            print("Evaluating the export before publishing it (--no-eval skips this)", flush=True)
            if preset.data is DataKind.BINARIZED and not evaluation.binarized_k:
                evaluation = replace(evaluation, binarized_k=protocol.TRAINING_K)
            figures = evaluate(
                signatures, x_test, mnist.y_test, evaluation, staging, trained.history
            )
        metadata = ModelMetadata(
            preset=preset.name,
            hyperparameters=preset.to_dict(),
            latent_dim=preset.latent_dim,
            prior=PriorInfo(kind=preset.prior, components=trained.prior.n_components),
            supports_digit=trained.digit_prior is not None,
            dataset=DatasetInfo(
                name="MNIST",
                source=mnist.source,
                train_examples=train_examples,
                test_examples=len(x_test),
                sha256=mnist.checksums(),
            ),
            metrics=last_test_metrics(trained.history),
            epochs=preset.epochs,
            training_seconds=round(trained.seconds, 1),
            history=trained.history,
            tensorflow_version=tf.__version__,
            keras_version=keras.__version__,
            git_commit=git_commit(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            latent_axes=latent_axes,
            score_reference=score_reference,
            evaluation=figures,
        )
        metadata.write(staging)
        version_dir = export.publish(staging)
    if figures:
        print(format_figures(figures), flush=True)
    return version_dir


def train(
    preset: Preset,
    model_dir: Path | str = "model",
    data_dir: Path | str | None = None,
    resume: bool = False,
    train_limit: int | None = None,
    evaluation: EvalConfig | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> Path | None:
    """Train ``preset`` on MNIST, export it (evaluated when ``evaluation`` is given), and
    return the version folder (None on a worker that is not the chief).

    ``train_limit`` trains on the first N training images only (quick runs and tests).
    ``strategy`` is made by ``training.distribute``; without one, training uses one device.
    """
    if strategy is None:
        print(configure_devices(), flush=True)
        strategy = tf.distribute.get_strategy()
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if not chief:
        print(f"{worker_name()}: training; the chief writes the logs and the export", flush=True)
    keras.utils.set_random_seed(preset.seed)
    mnist = mnist_data.load_mnist(data_dir)
    x_train = mnist_data.to_float(mnist.x_train[:train_limit])
    y_train = mnist.y_train[:train_limit]
    paths = RunPaths.for_run(model_dir, preset, train_limit, None if chief else worker_name())

    x_test = mnist_data.to_float(mnist.x_test)
    if preset.data is DataKind.BINARIZED:  # training binarizes each batch; the test set once
        x_test = protocol.binarize_test_set(x_test)
    train_ds, test_ds = datasets(x_train, x_test, preset)
    # XLA-compiled steps cannot read the replicas' variables on other devices (measured:
    # "Trying to access resource ... located in device CPU:1 from device CPU:0").
    jit = preset.jit_compile and replicas == 1
    if preset.jit_compile and not jit and chief:
        print(
            f"{replicas} replicas: XLA compilation off (it does not combine with "
            "tf.distribute strategies)",
            flush=True,
        )
    with strategy.scope():
        vae = build_vae(preset, math.ceil(len(x_train) / preset.batch_size), jit_compile=jit)
    started = time.perf_counter()
    fit(vae, train_ds, test_ds, paths, resume, chief)
    if not chief:
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        wait_for_all_workers(strategy)  # while the chief exports
        return None
    trained_vae = vae if replicas == 1 else single_device_copy(vae)
    codes = trained_vae.encoder.predict(x_train, batch_size=TEST_BATCH, verbose=0)[0]
    prior, digit_prior = fit_priors(trained_vae, codes, y_train)
    trained = Trained(
        trained_vae,
        prior,
        digit_prior,
        codes,
        read_history(paths.history_csv),
        time.perf_counter() - started,
    )

    version_dir = export_version(model_dir, trained, mnist, len(x_train), evaluation)
    shutil.rmtree(paths.checkpoints, ignore_errors=True)  # published: nothing to resume
    wait_for_all_workers(strategy)
    print(
        f"Exported {version_dir} after {trained.seconds:.0f} s of training: test -ELBO "
        f"{trained.history['val_loss'][-1]:.2f} nats",
        flush=True,
    )
    return version_dir
