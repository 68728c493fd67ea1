"""The exported VAE as the service sees it: a SavedModel's signatures plus its metadata.

Only the SavedModel contract is known here (signatures ``decode``, ``encode``, ``sample_batch``,
and ``sample_digit`` when the model can draw a chosen digit), never the training code.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

MODEL_NAME = "vae"
METADATA_FILE = "metadata.json"
REQUIRED_SIGNATURES = ("decode", "encode", "sample_batch")
ANY_DIGIT = -1  # sample_batch's ``digits`` value for "any digit"


class ModelNotFoundError(RuntimeError):
    """No exported model where the settings point."""


def find_version_dir(model_dir: Path, version: int | None = None) -> Path:
    """``<model_dir>/vae/<version>``: the given version, or the newest one."""
    base = Path(model_dir) / MODEL_NAME
    versions = sorted(
        int(p.name) for p in base.glob("*") if p.is_dir() and p.name.isdigit()
    ) if base.is_dir() else []
    hint = "Train one with `make train` (or `vae-train --model-dir MODEL_DIR`)."
    if not versions:
        raise ModelNotFoundError(f"no model in {base.resolve()}. {hint}")
    if version is None:
        return base / str(versions[-1])
    if version not in versions:
        raise ModelNotFoundError(
            f"model version {version} not in {base.resolve()} (found {versions}). {hint}"
        )
    return base / str(version)


def sample_rows(
    count: int, seed: int, temperature: float, digit: int | None
) -> dict[str, np.ndarray]:
    """``sample_batch`` inputs for one request: its ``count`` images are rows 0..count-1 of
    its seed, so the same request always gives the same digits, batched or not."""
    return {
        "seeds": np.full(count, seed, np.int64),
        "indices": np.arange(count, dtype=np.int64),
        "temperatures": np.full(count, temperature, np.float32),
        "digits": np.full(count, ANY_DIGIT if digit is None else digit, np.int32),
    }


class VaeModel:
    """The loaded signatures, numpy in and numpy out."""

    def __init__(self, version_dir: Path, device: str):
        self.path = Path(version_dir)
        self.device = device
        with tf.device(device):
            loaded = tf.saved_model.load(str(self.path))
        missing = [name for name in REQUIRED_SIGNATURES if name not in loaded.signatures]
        if missing:
            raise ModelNotFoundError(f"{self.path} lacks signature(s) {', '.join(missing)}")
        self._loaded = loaded  # keeps the variables alive
        self._signatures = dict(loaded.signatures)
        decode_inputs = self._signatures["decode"].structured_input_signature[1]
        self.latent_dim = int(decode_inputs["z"].shape[1])
        self.supports_digit = "sample_digit" in self._signatures
        metadata_path = self.path / METADATA_FILE
        self.metadata: dict[str, Any] = (
            json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
        )
        self.version = int(self.path.name)

    def call(self, signature: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run one signature; inputs are converted to the dtypes the signature declares."""
        function = self._signatures[signature]
        specs = function.structured_input_signature[1]
        with tf.device(self.device):
            outputs = function(
                **{name: tf.constant(value, specs[name].dtype) for name, value in inputs.items()}
            )
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def warm_up(self) -> float:
        """One call of each signature the service uses (first calls pay for graph setup);
        returns the seconds it took."""
        started = time.perf_counter()
        latents = self.call("sample_batch", **sample_rows(2, 0, 1.0, None))["latents"]
        images = self.call("decode", z=latents)["images"]
        self.call("encode", images=images)
        return time.perf_counter() - started

    def info(self) -> dict[str, Any]:
        """What ``GET /v1/model`` shows."""
        meta = self.metadata
        return {
            "name": meta.get("name", MODEL_NAME),
            "version": self.version,
            "path": str(self.path),
            "latent_dim": self.latent_dim,
            "image_shape": [28, 28],
            "device": "GPU" if "GPU" in self.device.upper() else "CPU",
            "device_name": self.device,
            "supports_digit": self.supports_digit,
            "signatures": sorted(self._signatures),
            "preset": meta.get("preset"),
            "prior": meta.get("prior"),
            "metrics": meta.get("metrics", {}),
            "evaluation": meta.get("evaluation", {}),
            "hyperparameters": meta.get("hyperparameters", {}),
            "epochs": meta.get("epochs"),
            "training_seconds": meta.get("training_seconds"),
            "dataset": meta.get("dataset"),
            "tensorflow_version": meta.get("tensorflow_version"),
            "created_at": meta.get("created_at"),
            "git_commit": meta.get("git_commit"),
        }
