"""Request and response bodies, with the limits and examples the docs page shows.

Request models are strict: ``true`` is not a number and ``"5"`` is not an integer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from vae_contract import ModelMetadata

# Codes far outside the prior decode to noise and overflow float32 on the way; JSON's
# NaN, Infinity and 1e400 (parsed as inf) are rejected by allow_inf_nan=False.
LATENT_LIMIT = 1000.0
MAX_SEED = 2**53 - 1  # the largest integer a JSON number (a double) holds exactly
MAX_ROWS = 1024  # VAE_MAX_BATCH at most: a longer list fails validation, within VAE_MAX_JSON_BYTES

LatentValue = Annotated[float, Field(allow_inf_nan=False, ge=-LATENT_LIMIT, le=LATENT_LIMIT)]
LatentCode = Annotated[list[LatentValue], Field(min_length=1, max_length=1024)]

EXAMPLE_LATENT: list[JsonValue] = [0.0] * 20


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
        1.0,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
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


class ErrorMessage(BaseModel):
    """An error as the standard protocols answer it (TensorFlow Serving's)."""

    error: str = Field(description="What is wrong, in the protocol's words")


# --- the latent explorer: reconstruct, interpolate, traverse, score ---------------------------

SigmaOffset = Annotated[float, Field(allow_inf_nan=False, ge=-10.0, le=10.0)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Digit = Annotated[int, Field(ge=0, le=9)]
PathMethod = Literal["linear", "spherical"]


class ReconstructResponse(BaseModel):
    inputs: list[str] = Field(
        description="Base64 PNGs of each upload as the model saw it: "
        "28×28, white on black, fitted in 20×20, centred by mass"
    )
    mu: list[list[float]] = Field(description="Posterior means, one row per uploaded file")
    sigma: list[list[float]] = Field(description="Posterior standard deviations")
    reconstructions: list[str] = Field(description="Base64 PNGs: μ decoded")
    log_px: list[float] = Field(description="IWAE estimate of log p(x) of each input (nats)")
    percentile: list[float | None] = Field(
        description="Where log p(x) falls among test digits, 0 to 100 (null: the model has no "
        "score reference)"
    )


class InterpolateRequest(_Request):
    """A path between two codes, or between the codes of two seeds (prior samples)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"seeds": [1, 2], "steps": 8},
                {"latents": [[-1.0] * 20, [1.0] * 20], "steps": 5, "method": "linear"},
            ]
        }
    )

    latents: list[LatentCode] | None = Field(
        None, min_length=2, max_length=2, description="The two ends, latent_dim numbers each"
    )
    seeds: list[Seed] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Or: the ends are image 0 of /v1/generate with each seed",
    )
    digits: list[Digit | None] | None = Field(
        None, min_length=2, max_length=2, description="With seeds: the digit of each end"
    )
    temperature: float = Field(
        1.0, ge=0.0, le=10.0, allow_inf_nan=False, description="With seeds: as in generate"
    )
    steps: int = Field(
        8, ge=2, description="Images on the path, both ends included (2 to VAE_MAX_STEPS)"
    )
    method: PathMethod | None = Field(
        None,
        description="linear, or spherical (slerp); default: spherical between seeds "
        "(prior samples), linear otherwise",
    )

    @model_validator(mode="after")
    def _one_kind_of_end(self) -> InterpolateRequest:
        if (self.latents is None) == (self.seeds is None):
            raise ValueError("give either latents (two codes) or seeds (two seeds)")
        if self.digits is not None and self.seeds is None:
            raise ValueError("digits go with seeds")
        return self


UPLOADED_FILES = "Digit images (PNG, JPEG, GIF, BMP, WebP, TIFF), made MNIST-like"


class InterpolateUploads(BaseModel):
    """Interpolation between the codes (μ) of two uploaded images."""

    model_config = ConfigDict(extra="forbid")

    file: list[UploadFile] = Field(min_length=1, description=f"Two files. {UPLOADED_FILES}")
    steps: int = Field(8, ge=2, description="Images on the path (2 to VAE_MAX_STEPS)")
    method: PathMethod = Field("linear", description="linear, or spherical (slerp)")


class ScoreUploads(BaseModel):
    """Uploaded images to score."""

    model_config = ConfigDict(extra="forbid")

    file: list[UploadFile] = Field(min_length=1, description=UPLOADED_FILES)


class InterpolateResponse(BaseModel):
    latents: list[list[float]] = Field(description="The codes on the path, first to last")
    images: list[str] = Field(description="Base64 PNGs of the codes decoded")
    method: PathMethod = Field(description="How the path was drawn")


class TraverseRequest(_Request):
    """A walk from a code along one axis, in standard deviations of the training codes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"axis": 0, "basis": "principal", "range": [-3, 3], "steps": 9},
                {"latent": EXAMPLE_LATENT, "axis": 5, "basis": "dimension", "steps": 7},
            ]
        }
    )

    latent: LatentCode | None = Field(
        None, description="Where to start; default: the mean code of the training set"
    )
    axis: int = Field(0, ge=0, description="Which axis, 0 to latent_dim - 1")
    basis: Literal["principal", "dimension"] = Field(
        "principal",
        description="principal: the axis-th principal axis of the training "
        "encodings (latent_axes in GET /v1/model), by decreasing variance; dimension: the "
        "axis-th latent coordinate",
    )
    range: list[SigmaOffset] = Field(
        [-3.0, 3.0],
        min_length=2,
        max_length=2,
        description="First and last offset, in "
        "standard deviations of the training codes along the axis (-10 to 10)",
    )
    steps: int = Field(9, ge=2, description="Images, both ends included (2 to VAE_MAX_STEPS)")


class TraverseResponse(BaseModel):
    latents: list[list[float]] = Field(description="The codes walked through")
    images: list[str] = Field(description="Base64 PNGs of the codes decoded")
    offsets: list[float] = Field(description="Each code's offset from the start, in σ units")
    sigma: float = Field(description="The training codes' standard deviation along the axis")


class ScoreRequest(_Request):
    """Codes to score: each is decoded, and the decoded digit is scored."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"latents": [EXAMPLE_LATENT]}]})

    latents: list[LatentCode] = Field(min_length=1, max_length=MAX_ROWS)


class ScoreResponse(BaseModel):
    log_px: list[float] = Field(description="IWAE estimate of log p(x) per image (nats)")
    percentile: list[float | None] = Field(
        description="Where it falls among test digits, 0 to 100 (null without a reference)"
    )
    samples: int = Field(description="Importance samples per image")
    seed: int = Field(description="Seed of the importance samples (the estimate is repeatable)")
    reference_examples: int | None = Field(
        description="Test digits behind the percentiles (null: the model has no reference)"
    )


class ReportPictures(BaseModel):
    version: int
    pictures: list[str] = Field(description="Names for GET /v1/model/report/{name}")
