"""Service settings, read from ``VAE_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; the README's configuration table lists the same."""

    model_config = SettingsConfigDict(env_prefix="VAE_", env_file=".env", extra="ignore")

    model_dir: Path = Field(Path("model"), description="Base folder holding vae/<version>/")
    model_version: int | None = Field(None, ge=1, description="Version to serve; newest if unset")
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="auto: the GPU when TensorFlow sees one, else the CPU"
    )
    max_batch: int = Field(256, ge=1, description="Most codes, samples or files per request")
    max_upload_bytes: int = Field(
        5 * 1024 * 1024, ge=1024, description="Largest request body, in bytes"
    )
    max_image_pixels: int = Field(
        16_000_000, ge=784, description="Largest uploaded image, in pixels (decompression bombs)"
    )
    intra_op_threads: int = Field(
        0, ge=0, description="TensorFlow threads per op; 0 lets TensorFlow use every host core"
    )
    inter_op_threads: int = Field(
        0, ge=0, description="TensorFlow ops run in parallel; 0 lets TensorFlow decide"
    )
    model_poll_seconds: float = Field(
        10.0, gt=0, description="While no model is found, look again this often"
    )
    host: str = Field("127.0.0.1", description="vae-serve's bind address")
    port: int = Field(8000, ge=0, le=65535, description="vae-serve's port")
    log_level: str = Field("info", description="Logging level")


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
