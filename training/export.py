"""Export the trained VAE as a versioned SavedModel: ``<model-dir>/vae/<version>/``.

Signatures (the contract with the service; loadable with plain ``tf.saved_model.load``):

- ``decode`` (also ``serving_default``): ``z`` float32 [N, D] -> ``images`` float32 [N, 28, 28]
- ``encode``: ``images`` float32 [N, 28, 28] in [0, 1] -> ``mu``, ``sigma``, ``log_var`` [N, D]
- ``sample``: ``count`` int32 [], ``seed`` int64 [], ``temperature`` float32 []
  -> ``latents`` [count, D], ``images`` [count, 28, 28]; stateless, so a seed is reproducible
- ``sample_digit``: as ``sample`` plus ``digit`` int32 [] (0..9); only when the model has a
  per-digit prior.
- ``sample_batch``: one row per image, ``seeds`` int64 [N], ``indices`` int64 [N],
  ``temperatures`` float32 [N], ``digits`` int32 [N] (-1: any digit) -> ``latents``, ``images``.
  Row i equals image ``indices[i]`` of ``sample`` (or ``sample_digit``) with ``seeds[i]``: what
  a server needs to answer many requests with one call.
- ``log_weights``: ``images`` [N, 28, 28], ``samples`` int32 [], ``seed`` int64 []
  -> ``log_weights`` [N, samples] = log p(x|z) + log p(z) − log q(z|x), z ~ q(z|x), under the
  prior that ``sample`` draws from: the ELBO is their mean, the IWAE bound their log-mean-exp.

``metadata.json`` sits beside ``saved_model.pb``. The version folder is written under a
temporary name and renamed into place, so readers never see half a model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from training import prior as priors
from training.model import IMAGE_SHAPE, N_PIXELS, VAE

MODEL_NAME = "vae"
METADATA_FILE = "metadata.json"


def existing_versions(model_base: Path) -> list[int]:
    """Numeric version folders under ``<model-dir>/vae`` (TF Serving's layout), ascending."""
    if not model_base.is_dir():
        return []
    return sorted(int(p.name) for p in model_base.iterdir() if p.is_dir() and p.name.isdigit())


def build_archive(
    vae: VAE, prior: priors.MixturePrior, digit_prior: priors.MixturePrior | None
) -> keras.export.ExportArchive:
    """The SavedModel's endpoints, as tf.functions over the trained encoder and decoder."""
    d = vae.preset.latent_dim
    encoder, decoder = vae.encoder, vae.decoder
    scalar = {
        "count": tf.TensorSpec([], tf.int32, name="count"),
        "seed": tf.TensorSpec([], tf.int64, name="seed"),
        "temperature": tf.TensorSpec([], tf.float32, name="temperature"),
    }

    def images_from(z: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(decoder(z, training=False))

    def decode(z):
        return {"images": images_from(z)}

    def encode(images):
        mu, log_var = encoder(images, training=False)
        return {"mu": mu, "sigma": tf.exp(0.5 * log_var), "log_var": log_var}

    sampler = priors.Sampler(prior, digit_prior)

    def sampled(z):
        return {"latents": z, "images": images_from(z)}

    def sample(count, seed, temperature):
        return sampled(sampler.sample(count, seed, temperature, priors.ANY_DIGIT))

    def sample_digit(count, seed, temperature, digit):
        tf.debugging.assert_greater_equal(digit, 0, message="digit must be 0..9")
        return sampled(sampler.sample(count, seed, temperature, digit))

    def sample_batch(seeds, indices, temperatures, digits):
        return sampled(sampler.rows(seeds, indices, temperatures, digits))

    def log_weights(images, samples, seed):
        mu, log_var = encoder(images, training=False)
        seed = tf.stack([seed, tf.constant(3, tf.int64)])
        epsilon = tf.random.stateless_normal(tf.concat([[samples], tf.shape(mu)], 0), seed=seed)
        z = mu + tf.exp(0.5 * log_var) * epsilon  # [samples, N, D]
        logits = decoder(tf.reshape(z, [-1, d]), training=False)
        logits = tf.reshape(logits, [samples, -1, N_PIXELS])
        pixels = tf.reshape(images, [1, -1, N_PIXELS]) * tf.ones_like(logits)
        log_px = -tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=pixels, logits=logits), axis=-1
        )
        log_qz = -0.5 * tf.reduce_sum(
            tf.square(epsilon) + log_var + tf.math.log(2 * np.pi), axis=-1
        )
        return {"log_weights": tf.transpose(log_px + priors.log_density(prior, z) - log_qz)}

    archive = keras.export.ExportArchive()
    archive.track(encoder)
    archive.track(decoder)
    # The first endpoint also becomes "serving_default" (what TF Serving calls by default).
    archive.add_endpoint("decode", decode, [tf.TensorSpec([None, d], tf.float32, name="z")])
    archive.add_endpoint(
        "encode", encode, [tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name="images")]
    )
    archive.add_endpoint(
        "sample", sample, [scalar["count"], scalar["seed"], scalar["temperature"]]
    )
    archive.add_endpoint(
        "sample_batch",
        sample_batch,
        [
            tf.TensorSpec([None], tf.int64, name="seeds"),
            tf.TensorSpec([None], tf.int64, name="indices"),
            tf.TensorSpec([None], tf.float32, name="temperatures"),
            tf.TensorSpec([None], tf.int32, name="digits"),
        ],
    )
    archive.add_endpoint(
        "log_weights",
        log_weights,
        [
            tf.TensorSpec([None, *IMAGE_SHAPE], tf.float32, name="images"),
            tf.TensorSpec([], tf.int32, name="samples"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ],
    )
    if digit_prior is not None:
        archive.add_endpoint(
            "sample_digit",
            sample_digit,
            [*scalar.values(), tf.TensorSpec([], tf.int32, name="digit")],
        )
    return archive


def export_model(
    vae: VAE,
    prior: priors.MixturePrior,
    digit_prior: priors.MixturePrior | None,
    model_dir: Path,
    metadata: dict[str, Any],
) -> Path:
    """Write ``<model_dir>/vae/<next version>/`` atomically and return its path."""
    base = Path(model_dir) / MODEL_NAME
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=base))
    try:
        build_archive(vae, prior, digit_prior).write_out(str(staging), verbose=False)
        while True:
            version = (existing_versions(base) or [0])[-1] + 1
            target = base / str(version)
            full_metadata = {"name": MODEL_NAME, "version": version, **metadata}
            (staging / METADATA_FILE).write_text(json.dumps(full_metadata, indent=2) + "\n")
            try:
                os.rename(staging, target)  # atomic; fails if another run took the number
                return target
            except OSError:
                if not target.exists():
                    raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def update_metadata(version_dir: Path, **fields: Any) -> None:
    """Merge fields into an export's metadata.json (written via a temp file + rename)."""
    path = Path(version_dir) / METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata.update(fields)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(metadata, indent=2) + "\n")
    os.replace(tmp, path)
