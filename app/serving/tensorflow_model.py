"""One exported model version loaded with TensorFlow: the SavedModel's signatures (numpy in,
numpy out), checked against ``vae_contract.SIGNATURES``, and its metadata; never the training
code.

``check_readable`` runs before TensorFlow touches the folder: TensorFlow reports an unreadable
file as missing, and a user must be told "permission denied" instead.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from pydantic import ValidationError
from tensorflow.core.protobuf import saved_model_pb2

from app.serving.errors import InvalidInput, LoadError
from app.serving.model import check_contract
from vae_contract import (
    METADATA_FILE,
    REQUIRED_SIGNATURES,
    SIGNATURES,
    ModelMetadata,
    Signature,
    SignatureSpec,
    TensorSpec,
)


def check_readable(version_dir: Path) -> None:
    """Open every file and list every folder of a version, so a permission problem is
    reported as such (with the fix) instead of as a missing SavedModel."""
    model_dir = version_dir.parent.parent

    def denied(path: Path) -> LoadError:
        return LoadError(
            "PERMISSION_DENIED",
            f"permission denied reading {path.relative_to(model_dir)} (the service runs as uid "
            f"{os.getuid()}): make the version readable, e.g. "
            f"chmod -R a+rX <model dir>/{version_dir.relative_to(model_dir)}",
        )

    def on_error(error: OSError) -> None:
        if error.errno in (errno.EACCES, errno.EPERM):
            raise denied(Path(error.filename)) from None
        raise LoadError("NOT_FOUND", f"the version folder cannot be listed: {error.strerror}")

    for root, dirs, files in os.walk(version_dir, onerror=on_error):
        for name in files:
            try:
                with open(Path(root) / name, "rb"):
                    pass
            except PermissionError:
                raise denied(Path(root) / name) from None
        for name in dirs:
            if not os.access(Path(root) / name, os.R_OK | os.X_OK):
                raise denied(Path(root) / name)


def _spec(name: str, tensor: Any) -> TensorSpec:
    shape = tuple(None if d is None else int(d) for d in tensor.shape.as_list())
    return TensorSpec(name, np.dtype(tensor.dtype.as_numpy_dtype), shape)


class VaeModel:
    """A loaded version: its signatures, metadata and TensorFlow Serving signature_def map."""

    def __init__(self, version_dir: Path, device: str):
        self.path = Path(version_dir)
        self.version = int(self.path.name)
        self.device = device
        check_readable(self.path)
        self.metadata = _read_metadata(self.path)
        self.signature_defs = _read_signature_defs(self.path)
        try:
            with tf.device(device):
                loaded = tf.saved_model.load(str(self.path))
        except Exception as error:  # noqa: BLE001 - TensorFlow raises many kinds
            raise LoadError("DATA_LOSS", f"the SavedModel does not load: {error}") from None
        missing = [str(s) for s in REQUIRED_SIGNATURES if s not in loaded.signatures]
        if missing:
            raise LoadError(
                "FAILED_PRECONDITION",
                f"the SavedModel lacks the signature(s) {', '.join(missing)}; export it again "
                "with this project's vae-train",
            )
        self._loaded = loaded  # keeps the variables alive
        self._functions = dict(loaded.signatures)
        self.signatures = {
            name: SignatureSpec(
                name,
                {k: _spec(k, v) for k, v in fn.structured_input_signature[1].items()},
                {k: _spec(k, v) for k, v in fn.structured_outputs.items()},
            )
            for name, fn in self._functions.items()
        }
        self.latent_dim = int(self.signatures[Signature.DECODE].inputs["z"].shape[1] or 0)
        if self.latent_dim != self.metadata.latent_dim:
            raise LoadError(
                "FAILED_PRECONDITION",
                f"{METADATA_FILE} says latent_dim {self.metadata.latent_dim}, the decode "
                f"signature takes {self.latent_dim}",
            )
        check_contract(self.signatures, self.latent_dim)
        self.supports_digit = Signature.SAMPLE_DIGIT in self._functions

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one signature; inputs are converted to the dtypes the signature declares."""
        function = self._functions[signature]
        specs = self.signatures[signature].inputs
        try:
            with tf.device(self.device):
                outputs = function(
                    **{
                        name: tf.constant(value, specs[name].dtype)
                        for name, value in inputs.items()
                    }
                )
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            message = getattr(error, "message", None) or str(error)
            raise InvalidInput(message.strip().splitlines()[0]) from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def warm_up(self) -> float:
        """Call every signature the service uses once, off the request path (first calls pay
        for graph set-up), with the contract's example inputs; returns the seconds it took."""
        started = time.perf_counter()
        for name in REQUIRED_SIGNATURES:
            self.call(name, SIGNATURES[name].example_inputs(self.latent_dim))
        return time.perf_counter() - started


def _read_metadata(version_dir: Path) -> ModelMetadata:
    try:
        return ModelMetadata.read(version_dir)
    except FileNotFoundError:
        raise LoadError(
            "NOT_FOUND", f"{METADATA_FILE} is missing: not a version exported by vae-train"
        ) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise LoadError(
            "FAILED_PRECONDITION", f"{METADATA_FILE} is invalid at {where}: {first['msg']}"
        ) from None


def _read_signature_defs(version_dir: Path) -> dict[str, Any]:
    """The ``signature_def`` map as TensorFlow Serving prints it in ``/metadata`` (protobuf
    JSON with the proto field names and every field)."""
    pb = version_dir / "saved_model.pb"
    if not pb.is_file():
        raise LoadError(
            "NOT_FOUND", "saved_model.pb is missing: not a SavedModel (or still being copied)"
        )
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(pb.read_bytes())
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise LoadError(
            "DATA_LOSS", "saved_model.pb is corrupt (not a SavedModel protobuf)"
        ) from None
    if not saved_model.meta_graphs:
        raise LoadError("DATA_LOSS", "saved_model.pb holds no graph")
    signatures = saved_model.meta_graphs[0].signature_def
    return {  # by name: a protobuf map's order changes from one process to the next
        name: json_format.MessageToDict(
            signatures[name],
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        for name in sorted(signatures)
    }
