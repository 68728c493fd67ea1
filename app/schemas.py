"""Request and response bodies, with the limits and examples the docs page shows.

Request models are strict: ``true`` is not a number and ``"5"`` is not an integer.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from vae_contract import ModelMetadata

# Codes far outside the prior decode to noise and overflow float32 on the way; JSON's
# NaN, Infinity and 1e400 (parsed as inf) are rejected by allow_inf_nan=False.
LATENT_LIMIT = 1000.0
MAX_SEED = 2**63 - 1
MAX_ROWS = 4096  # hard cap before the VAE_MAX_BATCH check, so a huge list fails fast

LatentValue = Annotated[float, Field(allow_inf_nan=False, ge=-LATENT_LIMIT, le=LATENT_LIMIT)]
LatentCode = Annotated[list[LatentValue], Field(min_length=1, max_length=1024)]

EXAMPLE_LATENT = [0.0] * 20


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GenerateRequest(_Request):
    """Digits from random latent codes; every field is optional."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"count": 4, "seed": 42, "temperature": 1.0}]},
    )

    count: int = Field(1, ge=1, description="How many digits (1 to VAE_MAX_BATCH)")
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Same seed, same digits; drawn and returned if unset"
    )
    temperature: float = Field(
        1.0, ge=0.0, le=10.0, allow_inf_nan=False,
        description="Scales the prior's σ: below 1 gives more typical digits, 0 the modes",
    )
    digit: int | None = Field(
        None, ge=0, le=9, description="Generate this digit (models with supports_digit only)"
    )


class GenerateResponse(BaseModel):
    latents: list[list[float]] = Field(description="The codes that were decoded, one per image")
    images: list[str] = Field(description="Base64 PNGs, 28×28 greyscale, white digit on black")
    seed: int = Field(description="The seed used: send it again to get the same digits")
    digit: int | None = Field(None, description="The requested digit, if any")


class DecodeRequest(_Request):
    """Latent codes to decode, one row per image."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"latents": [EXAMPLE_LATENT]}]})

    latents: list[LatentCode] = Field(
        min_length=1,
        max_length=MAX_ROWS,
        description=f"Rows of latent_dim finite numbers in [-{LATENT_LIMIT:g}, {LATENT_LIMIT:g}]",
    )


class ImagesResponse(BaseModel):
    images: list[str] = Field(description="Base64 PNGs, 28×28 greyscale, white digit on black")


class EncodeResponse(BaseModel):
    mu: list[list[float]] = Field(description="Posterior means, one row per uploaded file")
    sigma: list[list[float]] = Field(description="Posterior standard deviations")
    log_var: list[list[float]] = Field(description="log σ², as the encoder outputs it")


class VersionInfo(BaseModel):
    version: int
    state: str = Field(description="START, LOADING, AVAILABLE, UNLOADING or END")
    error_code: str = Field(description='"OK", or why the version failed to load')
    error_message: str


class ModelInfo(ModelMetadata):
    """The served version: everything in its metadata.json, plus how it is served."""

    version: int = Field(description="The version answering (the newest served by default)")
    device: str = Field(description="GPU or CPU")
    device_name: str = Field(description="TensorFlow's device name, e.g. /CPU:0")
    signatures: list[str] = Field(description="The SavedModel's signatures")
    versions: list[VersionInfo] = Field(description="Every version the server knows of")
    settings: dict[str, Any] = Field(description="The effective VAE_* settings")


class Problem(BaseModel):
    detail: Any = Field(description="What is wrong, naming the field or file")


class TFServingError(BaseModel):
    error: str = Field(description="TensorFlow Serving's error message")
