"""A stand-in model for the fast tier: the SavedModel's signatures (names, dtypes, shapes)
computed with NumPy, so routing, validation, negotiation and the lifecycle are tested in
seconds without TensorFlow. The end-to-end tests use a real trained SavedModel instead.

A version folder for ``FakeLoader`` is any ``vae/<n>/`` folder; a ``fail`` file inside makes
its load fail with that file's text as the TensorFlow Serving error code.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from app.batching import InvalidInput
from app.lifecycle import LoadError, SignatureSpec, TensorSpec
from vae_contract import ModelMetadata

D = 20
F32, I32, I64 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64)


def _spec(name: str, inputs: dict, outputs: dict) -> SignatureSpec:
    return SignatureSpec(
        name,
        {k: TensorSpec(k, *v) for k, v in inputs.items()},
        {k: TensorSpec(k, *v) for k, v in outputs.items()},
    )


IMAGES = (F32, (None, 28, 28))
SAMPLED = {"latents": (F32, (None, D)), "images": IMAGES}
SIGNATURES = {
    "decode": _spec("decode", {"z": (F32, (None, D))}, {"images": IMAGES}),
    "encode": _spec(
        "encode", {"images": IMAGES}, {k: (F32, (None, D)) for k in ("mu", "sigma", "log_var")}
    ),
    "sample_batch": _spec(
        "sample_batch",
        {
            "seeds": (I64, (None,)),
            "indices": (I64, (None,)),
            "temperatures": (F32, (None,)),
            "digits": (I32, (None,)),
        },
        SAMPLED,
    ),
    "sample": _spec(
        "sample", {"count": (I32, ()), "seed": (I64, ()), "temperature": (F32, ())}, SAMPLED
    ),
    "log_weights": _spec(
        "log_weights",
        {"images": IMAGES, "samples": (I32, ()), "seed": (I64, ())},
        {"log_weights": (F32, (None, None))},
    ),
}
SIGNATURES["serving_default"] = SIGNATURES["decode"]


def latent_axes() -> dict[str, object]:
    """Principal axes for the fake: an orthonormal basis, spreads from 2 down to 0.5."""
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(D, D)))
    return {
        "mean": [0.1] * D,
        "axes": basis.T.tolist(),
        "stddev": np.linspace(2.0, 0.5, D).tolist(),
    }


SCORE_REFERENCE = {
    "samples": 16,
    "seed": 3,
    "examples": 1000,
    "percentiles": np.linspace(-200.0, -100.0, 101).tolist(),
}


def metadata(**changes: object) -> ModelMetadata:
    """Valid metadata for a fake version."""
    fields: dict[str, object] = dict(
        preset="fake",
        hyperparameters={"latent_dim": D},
        latent_dim=D,
        prior={"kind": "fitted", "components": 10},
        supports_digit=True,
        dataset={
            "name": "MNIST",
            "source": "none",
            "train_examples": 0,
            "test_examples": 0,
            "sha256": {},
        },
        metrics={"test_neg_elbo": 100.0},
        epochs=1,
        training_seconds=0.0,
        tensorflow_version="none",
        keras_version="none",
        created_at="2026-01-01T00:00:00+00:00",
        latent_axes=latent_axes(),
        score_reference=SCORE_REFERENCE,
    )
    fields.update(changes)
    return ModelMetadata.model_validate(fields)


class FakeModel:
    """Deterministic NumPy maths with the real signatures' inputs and outputs."""

    device = "/CPU:0"
    latent_dim = D
    supports_digit = True
    signature_defs = {"decode": {"inputs": {}, "outputs": {}, "method_name": "fake"}}

    def __init__(
        self,
        version: int = 1,
        delay: float = 0.0,
        metadata_changes: dict[str, object] | None = None,
    ):
        self.version = version
        self.delay = delay  # seconds per call: to hold the inference thread in tests
        self.metadata = metadata(**(metadata_changes or {}))
        self.signatures = SIGNATURES
        self.weights = np.random.default_rng(version).normal(0, 0.3, (D, 784)).astype(np.float32)
        self.calls: list[tuple[str, int]] = []

    def decode(self, z: np.ndarray) -> np.ndarray:
        return (1 / (1 + np.exp(-(z @ self.weights)))).reshape(-1, 28, 28).astype(np.float32)

    def latents(self, seeds, indices, temperatures, digits) -> np.ndarray:
        rows = [
            np.random.default_rng([int(s), int(i)]).normal(size=D) * t + max(d, 0)
            for s, i, t, d in zip(seeds, indices, temperatures, digits, strict=True)
        ]
        return np.asarray(rows, np.float32).reshape(-1, D)

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.delay:
            time.sleep(self.delay)
        first = next(iter(inputs.values()))
        self.calls.append((signature, len(first) if np.ndim(first) else 0))
        if signature in ("decode", "serving_default"):
            return {"images": self.decode(inputs["z"])}
        if signature == "encode":
            mu = inputs["images"].reshape(-1, 784) @ self.weights.T / 100
            log_var = np.full_like(mu, -2.0)
            return {"mu": mu, "sigma": np.exp(0.5 * log_var), "log_var": log_var}
        if signature == "sample_batch":
            if np.any(inputs["digits"] > 9) or np.any(inputs["digits"] < -1):
                raise InvalidInput("digits must be -1..9")
            z = self.latents(
                inputs["seeds"], inputs["indices"], inputs["temperatures"], inputs["digits"]
            )
            return {"latents": z, "images": self.decode(z)}
        if signature == "sample":
            count = int(inputs["count"])
            z = self.latents(
                [inputs["seed"]] * count,
                range(count),
                [inputs["temperature"]] * count,
                [-1] * count,
            )
            return {"latents": z, "images": self.decode(z)}
        if signature == "log_weights":
            images = inputs["images"].reshape(len(inputs["images"]), -1)
            base = -((images - 0.5) ** 2).sum(axis=1, keepdims=True)
            # As the real signature: draws keyed by the seed alone, the same for every row.
            noise = np.random.default_rng(int(inputs["seed"])).normal(
                size=(1, int(inputs["samples"]))
            )
            return {"log_weights": (base + noise).astype(np.float32)}
        raise KeyError(signature)

    def warm_up(self) -> float:
        return 0.0


class FakeLoader:
    """Loads any ``vae/<n>/`` folder as a FakeModel; a ``fail`` file makes it fail."""

    def __init__(
        self,
        delay: float = 0.0,
        load_seconds: float = 0.0,
        metadata_changes: dict[str, object] | None = None,
    ):
        self.delay = delay
        self.load_seconds = load_seconds
        self.metadata_changes = metadata_changes  # e.g. {"latent_axes": None}
        self.loaded: list[int] = []

    def __call__(self, path: Path) -> FakeModel:
        time.sleep(self.load_seconds)
        failure = path / "fail"
        if failure.exists():
            code = failure.read_text().strip() or "DATA_LOSS"
            raise LoadError(code, f"version {path.name} is broken on purpose ({code})")
        self.loaded.append(int(path.name))
        return FakeModel(int(path.name), self.delay, self.metadata_changes)


def make_versions(model_dir: Path, *versions: int, failing: dict[int, str] | None = None) -> Path:
    """Create fake version folders ``model_dir/vae/<n>``; returns ``model_dir``."""
    for version in versions:
        folder = model_dir / "vae" / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        if failing and version in failing:
            (folder / "fail").write_text(failing[version])
    return model_dir
