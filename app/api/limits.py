"""The settings' bounds on one request's work, checked before it is admitted: 422 naming the
field and the setting."""

from __future__ import annotations

import numpy as np

from app.api.errors import invalid
from app.config import Settings
from app.edge import negotiation


def check_rows(rows: int, field: list[str | int], settings: Settings) -> None:
    """At most VAE_MAX_BATCH images per request."""
    if rows > settings.max_batch:
        raise invalid(field, f"at most {settings.max_batch} per request (VAE_MAX_BATCH)")


def check_png_size(kind: str, rows: int, scale: int, settings: Settings) -> None:
    """A PNG answer of at most VAE_MAX_OUTPUT_PIXELS pixels."""
    pixels = rows * (28 * scale) ** 2
    if kind == negotiation.PNG and pixels > settings.max_output_pixels:
        raise invalid(
            ["query", "scale"],
            f"a PNG of {rows} digits at scale {scale} would have {pixels} pixels, more than "
            f"VAE_MAX_OUTPUT_PIXELS ({settings.max_output_pixels}); lower scale or count",
        )


def check_codes(codes: list[list[float]], latent_dim: int, field: list[str | int]) -> np.ndarray:
    """Each code has ``latent_dim`` numbers; float32 [N, D]."""
    for row, code in enumerate(codes):
        if len(code) != latent_dim:
            raise invalid(
                [*field, row], f"latent code has {len(code)} numbers, the model needs {latent_dim}"
            )
    return np.asarray(codes, np.float32)


def check_steps(steps: int, settings: Settings) -> None:
    """At most VAE_MAX_STEPS images on a path."""
    if steps > settings.max_steps:
        raise invalid(["body", "steps"], f"at most {settings.max_steps} steps (VAE_MAX_STEPS)")


def check_score_work(rows: int, samples: int, field: list[str | int], settings: Settings) -> None:
    """Scoring costs a decoder pass per importance sample: at most VAE_MAX_SCORE_SAMPLES."""
    if rows * samples > settings.max_score_samples:
        most = settings.max_score_samples // samples
        raise invalid(
            field,
            f"at most {most} images per request: each is scored with {samples} "
            f"importance samples, and VAE_MAX_SCORE_SAMPLES is "
            f"{settings.max_score_samples}",
        )


def check_files(count: int, low: int, high: int) -> None:
    """Between ``low`` and ``high`` uploaded files."""
    if not low <= count <= high:
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise invalid(["body", "file"], f"send {wanted} files in parts named file, not {count}")
