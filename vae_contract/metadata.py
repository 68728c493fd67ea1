"""``metadata.json``: how a version was trained and how well it does, typed (pydantic).

The server validates it when it loads a version; fields it does not know are ignored, so a
server reads versions exported before and after it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vae_contract.layout import IMAGE_SHAPE, METADATA_FILE, MODEL_NAME


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
