"""Export the trained VAE as a versioned SavedModel: ``<model-dir>/vae/<version>/``.

Signatures (the contract with the service; loadable with plain ``tf.saved_model.load``):

- ``decode`` (also ``serving_default``): ``z`` float32 [N, D] -> ``images`` float32 [N, 28, 28]
- ``encode``: ``images`` float32 [N, 28, 28] in [0, 1] -> ``mu``, ``sigma``, ``log_var`` [N, D]
- ``sample``: ``count`` int32 [], ``seed`` int64 [], ``temperature`` float32 []
  -> ``latents`` [count, D], ``images`` [count, 28, 28]; stateless, so a seed is reproducible
- ``sample_digit``: as ``sample`` plus ``digit`` int32 [] (0..9); only when the model has a
  per-digit prior.

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
import tensorflow as tf

from training import prior as priors
from training.model import IMAGE_SHAPE, VAE

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

    def sample(count, seed, temperature):
        z = priors.sample(prior, count, seed, temperature)
        return {"latents": z, "images": images_from(z)}

    def sample_digit(count, seed, temperature, digit):
        tf.debugging.assert_less_equal(digit, 9, message="digit must be 0..9")
        tf.debugging.assert_greater_equal(digit, 0, message="digit must be 0..9")
        z = priors.sample(digit_prior, count, seed, temperature, digit=digit)
        return {"latents": z, "images": images_from(z)}

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
