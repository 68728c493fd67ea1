"""A stand-in model for the fast tier: the SavedModel's signatures (names, dtypes, shapes)
computed with NumPy, so routing, validation, negotiation and the lifecycle are tested in
seconds without TensorFlow. The end-to-end tests use a real trained SavedModel instead.

A version folder for ``FakeLoader`` is any ``vae/<n>/`` folder; a ``fail`` file inside makes
its load fail with that file's text as the TensorFlow Serving error code.

A ``Gate`` (in this process) or a ``FileGate`` (across processes) holds every model call until
the test opens it, and says when a call is waiting: tests synchronise on events, never on time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from app.serving.errors import InvalidInput, LoadError
from vae_contract import SERVING_DEFAULT, ModelMetadata, Signature
from vae_contract import SIGNATURES as CONTRACT

D = 20
# The real signatures' inputs and outputs, from the contract's table (as the export's are).
SIGNATURES = {name: contract.spec(D) for name, contract in CONTRACT.items()}
SIGNATURES[SERVING_DEFAULT] = SIGNATURES[Signature.DECODE]


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


class Gate:
    """Holds model calls until ``open()``; ``waiting`` is set once a call waits at it."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self._open = threading.Event()

    def pass_through(self) -> None:
        self.waiting.set()
        self._open.wait(60)

    def open(self) -> None:
        self._open.set()


class FileGate:
    """The same for a server in another process: calls wait while ``path`` exists, and
    ``<path>.waiting`` appears once one does."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.waiting_marker = self.path.with_name(self.path.name + ".waiting")

    def close(self) -> None:
        self.path.touch()

    def pass_through(self) -> None:
        if not self.path.exists():
            return
        self.waiting_marker.touch()
        deadline = time.monotonic() + 60
        while self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)

    def is_waiting(self) -> bool:
        return self.waiting_marker.exists()

    def open(self) -> None:
        self.path.unlink(missing_ok=True)


class Passable(Protocol):
    def pass_through(self) -> None: ...


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
        gate: Passable | None = None,
    ):
        self.version = version
        self.delay = delay  # seconds per call: a model this slow (capacity, not synchronisation)
        self.gate = gate
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
        if self.gate is not None:
            self.gate.pass_through()
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
        if signature in ("sample", "sample_digit"):
            count = int(inputs["count"])
            z = self.latents(
                [inputs["seed"]] * count,
                range(count),
                [inputs["temperature"]] * count,
                [int(inputs.get("digit", -1))] * count,
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
        gate: Passable | None = None,
    ):
        self.delay = delay
        self.load_seconds = load_seconds
        self.metadata_changes = metadata_changes  # e.g. {"latent_axes": None}
        self.gate = gate  # given to every model it loads
        self.loaded: list[int] = []
        self.attempts: list[int] = []  # every load tried, failed ones included

    def __call__(self, path: Path) -> FakeModel:
        time.sleep(self.load_seconds)
        self.attempts.append(int(path.name))
        failure = path / "fail"
        if failure.exists():
            code = failure.read_text().strip() or "DATA_LOSS"
            raise LoadError(code, f"version {path.name} is broken on purpose ({code})")
        self.loaded.append(int(path.name))
        return FakeModel(int(path.name), self.delay, self.metadata_changes, self.gate)


def make_versions(model_dir: Path, *versions: int, failing: dict[int, str] | None = None) -> Path:
    """Create fake version folders ``model_dir/vae/<n>``; returns ``model_dir``."""
    for version in versions:
        folder = model_dir / "vae" / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        if failing and version in failing:
            (folder / "fail").write_text(failing[version])
    return model_dir
