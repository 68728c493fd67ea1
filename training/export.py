"""Export wiring: the trained VAE as a SavedModel, published as ``<model-dir>/vae/<version>/``.

The signatures (names, inputs, outputs) are those of ``vae_contract.SIGNATURES``; the maths
behind them lives in ``training.model`` and ``training.prior``. A version is assembled in a
staging folder (``.export-*``, which readers ignore), made world-readable, then renamed to the
next version number in one step: a reader never sees half a version, and nothing writes into a
published version afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import tensorflow as tf

from training import prior as priors
from training.model import VAE, importance_log_weights
from vae_contract import ANY_DIGIT, SIGNATURES, Signature, list_versions, model_base

STAGING_PREFIX = ".export-"


def input_specs(signature: Signature, latent_dim: int) -> list[tf.TensorSpec]:
    """The signature's inputs as ``vae_contract.SIGNATURES`` describes them, in order."""
    spec = SIGNATURES[signature].spec(latent_dim)
    return [
        tf.TensorSpec(list(tensor.shape), tf.as_dtype(tensor.dtype), name=name)
        for name, tensor in spec.inputs.items()
    ]


def build_archive(
    vae: VAE, prior: priors.MixturePrior, digit_prior: priors.MixturePrior | None
) -> keras.export.ExportArchive:
    """The SavedModel's signatures as functions of the trained encoder, decoder and priors;
    their inputs are the contract's (``vae_contract.SIGNATURES``), in its order."""
    encoder, decoder = vae.encoder, vae.decoder
    sampler = priors.Sampler(prior, digit_prior)

    def sampled(z):
        return {"latents": z, "images": tf.sigmoid(decoder(z, training=False))}

    def decode(z):
        return {"images": tf.sigmoid(decoder(z, training=False))}

    def encode(images):
        mu, log_var = encoder(images, training=False)
        return {"mu": mu, "sigma": tf.exp(0.5 * log_var), "log_var": log_var}

    def sample(count, seed, temperature):
        return sampled(sampler.sample(count, seed, temperature, ANY_DIGIT))

    def sample_digit(count, seed, temperature, digit):
        tf.debugging.assert_greater_equal(digit, 0, message="digit must be 0..9")
        return sampled(sampler.sample(count, seed, temperature, digit))

    def sample_batch(seeds, indices, temperatures, digits):
        return sampled(sampler.rows(seeds, indices, temperatures, digits))

    def log_weights(images, samples, seed):
        def log_prior(z):
            return priors.log_density(prior, z)

        weights = importance_log_weights(encoder, decoder, log_prior, images, samples, seed)
        return {"log_weights": weights}

    functions = {
        # The first endpoint also becomes "serving_default" (what TF Serving calls by default).
        Signature.DECODE: decode,
        Signature.ENCODE: encode,
        Signature.SAMPLE: sample,
        Signature.SAMPLE_BATCH: sample_batch,
        Signature.LOG_WEIGHTS: log_weights,
    }
    if digit_prior is not None:
        functions[Signature.SAMPLE_DIGIT] = sample_digit
    archive = keras.export.ExportArchive()
    archive.track(encoder)
    archive.track(decoder)
    for name, function in functions.items():
        archive.add_endpoint(name, function, input_specs(name, vae.preset.latent_dim))
    return archive


@contextmanager
def staging_folder(model_dir: Path | str) -> Iterator[Path]:
    """A new empty ``<model_dir>/vae/.export-*/`` folder, removed on leaving the block unless
    ``publish`` renamed it into a version."""
    base = model_base(model_dir)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_savedmodel(
    folder: Path,
    vae: VAE,
    prior: priors.MixturePrior,
    digit_prior: priors.MixturePrior | None,
) -> None:
    """Write the SavedModel (``saved_model.pb``, ``variables/``) into ``folder``."""
    build_archive(vae, prior, digit_prior).write_out(str(folder), verbose=False)


def make_readable(folder: Path) -> None:
    """Folders 0755, files 0644 (mkdtemp makes 0700): a model trained on the host must be
    readable by a container's non-root user."""
    folder.chmod(0o755)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def publish(staging: Path) -> Path:
    """Rename the complete ``staging`` folder to the next version number and return it.

    The rename is atomic; when another run takes the number first, the next one is tried.
    """
    make_readable(staging)
    base = staging.parent
    while True:
        target = base / str((list_versions(base) or [0])[-1] + 1)
        try:
            os.rename(staging, target)
            return target
        except OSError:
            if not target.exists():
                raise
