"""The exported model's contract: what ``training/`` writes and ``app/`` reads, described once.

A model version is a folder ``<model-dir>/vae/<version>/`` (TensorFlow Serving's layout, the
version a positive integer) holding a SavedModel (``saved_model.pb``, ``variables/``), its
``metadata.json`` (``ModelMetadata``), the evaluation pictures in ``report/`` and, optionally,
TensorFlow Serving's warm-up requests in ``assets.extra/``. A version is published complete
(written under a dotted staging name, then renamed) and never changed afterwards.

Both packages import this module; it imports nothing but pydantic, so the lean serving install
and the training install share it. ``tests/test_contract.py`` pins it against a fresh export.
Beside it, ``vae_contract.quiet`` imports TensorFlow without its start-up notices, as both
sides load the artefact with it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MODEL_NAME = "vae"
METADATA_FILE = "metadata.json"
REPORT_DIR = "report"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
IMAGE_SHAPE = (28, 28)
ANY_DIGIT = -1  # ``sample_batch``'s ``digits`` value for "any digit"


class Signature(StrEnum):
    """The SavedModel's signatures. Inputs and outputs (N rows, D = ``latent_dim``):

    - ``decode`` (also ``serving_default``): ``z`` float32 [N, D] -> ``images`` [N, 28, 28]
    - ``encode``: ``images`` float32 [N, 28, 28] in [0, 1] -> ``mu``, ``sigma``, ``log_var``
    - ``sample``: ``count`` int32, ``seed`` int64, ``temperature`` float32 -> ``latents``,
      ``images``
    - ``sample_digit``: as ``sample`` plus ``digit`` int32; only with a per-digit prior
    - ``sample_batch``: ``seeds`` int64 [N], ``indices`` int64 [N], ``temperatures`` float32
      [N], ``digits`` int32 [N] (``ANY_DIGIT``: any) -> ``latents``, ``images``
    - ``log_weights``: ``images`` [N, 28, 28], ``samples`` int32, ``seed`` int64 ->
      ``log_weights`` [N, samples] (log p(x|z) + log p(z) - log q(z|x), z ~ q(z|x)); the draws
      are keyed by ``seed`` alone, so a row does not depend on the other rows of the call
    """

    DECODE = "decode"
    ENCODE = "encode"
    SAMPLE = "sample"
    SAMPLE_DIGIT = "sample_digit"
    SAMPLE_BATCH = "sample_batch"
    LOG_WEIGHTS = "log_weights"


SERVING_DEFAULT = "serving_default"  # TensorFlow Serving's default signature: ``decode``
REQUIRED_SIGNATURES = (
    Signature.DECODE,
    Signature.ENCODE,
    Signature.SAMPLE_BATCH,
    Signature.LOG_WEIGHTS,
)


def model_base(model_dir: Path | str) -> Path:
    """``<model_dir>/vae``: the folder whose numbered subfolders are the versions."""
    return Path(model_dir) / MODEL_NAME


def list_versions(base: Path | str) -> list[int]:
    """The published versions under ``base`` (``<model_dir>/vae``), ascending.

    Only folders named by a positive integer count: staging folders (``.export-*``) and
    anything else are ignored, as TensorFlow Serving does.
    """
    base = Path(base)
    try:
        entries = list(base.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        int(p.name) for p in entries if p.name.isdigit() and int(p.name) > 0 and p.is_dir()
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class PriorInfo(_Strict):
    kind: str = Field(description='"standard" N(0, I), or "fitted": a per-digit mixture')
    components: int = Field(ge=1, description="Mixture components random samples come from")


class DatasetInfo(_Strict):
    name: str
    source: str = Field(description="Where the training run found MNIST")
    train_examples: int
    test_examples: int
    sha256: dict[str, str] = Field(description="SHA-256 of each verified MNIST array")


class LatentAxes(_Strict):
    """Principal axes of the training set's encodings (μ): the explorer's sliders."""

    mean: list[float] = Field(description="Mean code [D]")
    axes: list[list[float]] = Field(
        description="Unit directions [D][D], one per row, by decreasing variance"
    )
    stddev: list[float] = Field(description="Standard deviation of the codes along each axis")


def iwae_estimate(log_weights: Sequence[float]) -> float:
    """log p(x) estimated from one image's row of ``log_weights``: log (1/k Σ exp w), the
    importance-weighted (IWAE) bound, computed stably. ``ScoreReference`` was made with this."""
    if not log_weights:
        raise ValueError("no log weights")
    top = max(log_weights)
    if math.isinf(top):
        return top
    return top + math.log(math.fsum(math.exp(w - top) for w in log_weights) / len(log_weights))


class ScoreReference(_Strict):
    """How test digits score, so a new image's log p(x) can be placed among them.

    A new image is scored as the test digits were: ``log_weights`` with these ``samples`` and
    ``seed``, then ``iwae_estimate`` of its row; ``percentile_of`` places the estimate.
    """

    samples: int = Field(ge=1, description="Importance samples per image (log_weights)")
    seed: int
    examples: int = Field(ge=1, description="Test digits scored")
    percentiles: list[float] = Field(
        min_length=101,
        max_length=101,
        description="IWAE estimate of log p(x) at the 0th, 1st, ..., 100th percentile",
    )

    def percentile_of(self, estimate: float) -> float:
        """The share of test digits (0..100) scoring below ``estimate``, interpolated linearly
        between the stored percentiles; 0 below the lowest, 100 above the highest."""
        if math.isnan(estimate):
            raise ValueError("estimate is NaN")
        values = self.percentiles
        if estimate <= values[0]:
            return 0.0
        if estimate >= values[-1]:
            return 100.0
        # values[above - 1] <= estimate < values[above]
        above = bisect.bisect_right(values, estimate)
        low, high = values[above - 1], values[above]
        return above - 1 + (estimate - low) / (high - low)


class ModelMetadata(_Strict):
    """``metadata.json``: how the version was trained and how well it does.

    A server reads versions exported before and after it: fields it does not know (such as
    the ``version`` that exports carried before the folder name became the only one) are
    ignored, not refused; the fields it needs are validated.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())

    name: str = MODEL_NAME
    preset: str
    hyperparameters: dict[str, Any]
    latent_dim: int = Field(ge=1)
    image_shape: tuple[int, int] = IMAGE_SHAPE
    prior: PriorInfo
    supports_digit: bool = Field(description="Has the sample_digit signature")
    dataset: DatasetInfo
    metrics: dict[str, float] = Field(description="Final test −ELBO and its terms (nats)")
    epochs: int
    training_seconds: float
    history: dict[str, list[float]] = Field(default_factory=dict)
    tensorflow_version: str
    keras_version: str
    git_commit: str | None = None
    created_at: str = Field(description="UTC, ISO 8601")
    latent_axes: LatentAxes | None = None
    score_reference: ScoreReference | None = None
    evaluation: dict[str, Any] = Field(
        default_factory=dict, description="Figures of the evaluation (empty if skipped)"
    )

    @classmethod
    def read(cls, version_dir: Path | str) -> ModelMetadata:
        """Read and validate ``<version_dir>/metadata.json`` (raises OSError or
        pydantic.ValidationError)."""
        return cls.model_validate_json((Path(version_dir) / METADATA_FILE).read_bytes())

    def write(self, version_dir: Path | str) -> Path:
        """Write ``<version_dir>/metadata.json`` (only ever into a staging folder)."""
        path = Path(version_dir) / METADATA_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path
