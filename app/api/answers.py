"""The answer-encoding stage: a request's rows of model outputs -> its HTTP answer.

Each answer is a small object naming how to encode (``ImagesAnswer``, ``GenerateAnswer``,
``EncodeAnswer``); the batcher calls its ``encode`` on the inference thread right after the
model call, so the event loop stays free for other requests. An answer marked ``heavy`` (a
big PNG grid, or JSON with many base64 PNGs) is encoded in a worker thread instead, so that it
does not hold up the small requests queued behind it on the inference thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.responses import Response

from app import metrics
from app.api import latent
from app.edge import negotiation
from app.media import pictures
from vae_contract import ScoreReference, iwae_estimate

HEAVY_PIXELS = 256 * 1024  # about 330 digits at scale 1: encoded off the inference thread
# JSON answers cost 0.09 ms an image (a PNG each, measured): 256 of them held every request
# queued behind for 22 ms on an idle core, over 100 ms on a busy machine. Beyond this many,
# they are encoded off the inference thread too.
HEAVY_IMAGES = 64


def json_response(
    content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Compact JSON (no spaces), as the answers are read by programs."""
    body = json.dumps(content, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code, headers, negotiation.JSON)


@dataclass(frozen=True)
class ImagesAnswer:
    """Images as the client asked: one PNG (a digit or a grid), JSON with base64 PNGs, or raw
    uint8 pixels [N, 28, 28] (``application/x-npy`` with a header, or bare bytes)."""

    media_type: str
    endpoint: str
    nrow: int | None = None
    scale: int = 1

    def heavy(self, rows: int) -> bool:
        """Large enough to be encoded off the inference thread."""
        if self.media_type == negotiation.PNG:
            return rows * (28 * self.scale) ** 2 > HEAVY_PIXELS
        return self.media_type == negotiation.JSON and rows > HEAVY_IMAGES

    def encode(self, outputs: dict[str, np.ndarray]) -> Response:
        batch = outputs["images"]
        metrics.child(metrics.IMAGES, self.endpoint).inc(len(batch))
        headers = self.headers()
        if self.media_type == negotiation.PNG:
            body = pictures.grid_png(batch, self.nrow, self.scale)
            return Response(body, media_type=negotiation.PNG, headers=headers)
        if self.media_type in (negotiation.NPY, negotiation.RAW):
            pixels = pictures.to_pixels(batch)
            body = (
                pictures.npy_bytes(pixels)
                if self.media_type == negotiation.NPY
                else pixels.tobytes()
            )
            shape = ",".join(str(d) for d in pixels.shape)
            return Response(
                body,
                media_type=self.media_type,
                headers={**headers, "X-Shape": shape, "X-Dtype": "uint8"},
            )
        return json_response(
            {**self.fields(outputs), "images": pictures.png_base64(batch)}, headers=headers or None
        )

    def fields(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """JSON fields besides ``images``."""
        return {}

    def headers(self) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class GenerateAnswer(ImagesAnswer):
    """Generated digits: also the codes, the seed (``X-Seed`` for binary answers) and digit."""

    seed: int = 0
    digit: int | None = None

    def fields(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        return {"latents": outputs["latents"].tolist(), "seed": self.seed, "digit": self.digit}

    def headers(self) -> dict[str, str]:
        return {"X-Seed": str(self.seed)}


@dataclass(frozen=True)
class EncodeAnswer:
    """μ, σ and log σ² of each uploaded image."""

    def heavy(self, rows: int) -> bool:
        return False

    def encode(self, outputs: dict[str, np.ndarray]) -> Response:
        metrics.child(metrics.IMAGES, "encode").inc(len(outputs["mu"]))
        return json_response({name: outputs[name].tolist() for name in ("mu", "sigma", "log_var")})


# --- the latent explorer ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PathAnswer(ImagesAnswer):
    """Codes decoded along a path (interpolation, traversal): the images, the codes and the
    path's own fields (``extra``)."""

    latents: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def fields(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        codes = self.latents.tolist() if self.latents is not None else []
        return {"latents": codes, **self.extra}


@dataclass(frozen=True, eq=False)
class ScoreAnswer:
    """IWAE estimates of log p(x) from ``log_weights`` [N, k], and their percentiles."""

    samples: int
    seed: int
    reference: ScoreReference | None

    def heavy(self, rows: int) -> bool:
        return False

    def scores(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        log_px = [iwae_estimate(row) for row in outputs["log_weights"].tolist()]
        return {
            "log_px": [round(v, 3) for v in log_px],
            "percentile": [latent.percentile(v, self.reference) for v in log_px],
        }

    def encode(self, outputs: dict[str, np.ndarray]) -> Response:
        return json_response(
            {
                **self.scores(outputs),
                "samples": self.samples,
                "seed": self.seed,
                "reference_examples": self.reference.examples if self.reference else None,
            }
        )


@dataclass(frozen=True, eq=False)
class ReconstructAnswer(ScoreAnswer):
    """Each step of an upload's way through the model: the preprocessed input, μ, σ, the
    reconstruction (the decoded μ: this answer's outputs) and the score (``log_weights``)."""

    inputs: np.ndarray | None = None
    encoded: dict[str, np.ndarray] = field(default_factory=dict)
    log_weights: np.ndarray | None = None

    def encode(self, outputs: dict[str, np.ndarray]) -> Response:
        assert self.inputs is not None and self.log_weights is not None
        metrics.child(metrics.IMAGES, "reconstruct").inc(len(self.inputs))
        return json_response(
            {
                "inputs": pictures.png_base64(self.inputs),
                "mu": self.encoded["mu"].tolist(),
                "sigma": self.encoded["sigma"].tolist(),
                "reconstructions": pictures.png_base64(outputs["images"]),
                **self.scores({"log_weights": self.log_weights}),
            }
        )


@dataclass(frozen=True, eq=False)
class PairsAnswer:
    """Inputs in the top row of one PNG, their reconstructions (the decoded images) below."""

    inputs: np.ndarray
    scale: int = 1

    def heavy(self, rows: int) -> bool:
        return 2 * rows * (28 * self.scale) ** 2 > HEAVY_PIXELS

    def encode(self, outputs: dict[str, np.ndarray]) -> Response:
        metrics.child(metrics.IMAGES, "reconstruct").inc(len(self.inputs))
        pairs = np.concatenate([self.inputs, outputs["images"]])
        body = pictures.grid_png(pairs, len(self.inputs), self.scale)
        return Response(body, media_type=negotiation.PNG)
