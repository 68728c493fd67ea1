"""Service settings, read from ``VAE_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob of the service; the README's configuration table lists the same."""

    model_config = SettingsConfigDict(
        env_prefix="VAE_", env_file=".env", extra="ignore", protected_namespaces=()
    )

    # --- the model and its versions ----------------------------------------------------------
    model_dir: Path = Field(Path("model"), description="Base folder holding vae/<version>/")
    model_version: int | None = Field(
        None, ge=1, description="Serve only this version (pinned); unset: the newest good one"
    )
    model_versions: str | None = Field(
        None,
        description='Serve several versions, addressable by URL: "1,3" or "all"; the newest '
        "of them answers unversioned requests",
    )
    model_poll_seconds: float = Field(
        5.0, ge=0, description="Look for new, changed or removed versions this often; 0: never"
    )
    device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="auto: the GPU when TensorFlow sees one, else the CPU"
    )
    # One thread each, measured (benchmarks/serve_bench.py): a call is small, and TensorFlow's
    # pool threads spin between calls; one worker process per core uses the cores instead.
    intra_op_threads: int = Field(
        1, ge=0, description="TensorFlow threads per op (per worker); 0: every host core"
    )
    inter_op_threads: int = Field(
        1, ge=0, description="TensorFlow ops run in parallel (per worker); 0: TensorFlow decides"
    )

    # --- requests ----------------------------------------------------------------------------
    max_batch: int = Field(
        256, ge=1, le=1024, description="Most codes, samples or files per request"
    )
    max_upload_bytes: int = Field(
        5 * MiB, ge=1024, description="Largest multipart (upload) request body, in bytes"
    )
    max_json_bytes: int = Field(
        MiB,
        ge=1024,
        description="Largest other request body (JSON), in bytes: parsed on the event loop",
    )
    max_image_pixels: int = Field(
        16_000_000, ge=784, description="Largest uploaded image, in pixels (decompression bombs)"
    )
    max_output_pixels: int = Field(
        64_000_000, ge=784, description="Largest PNG answer, in pixels (count × (28·scale)²)"
    )
    max_steps: int = Field(
        64, ge=2, le=1024, description="Most images on an interpolation or traversal path"
    )
    max_score_samples: int = Field(
        8_192,
        ge=1,
        description="Most importance samples per scoring request (images × the model's "
        "score samples): log p(x) costs one decoder pass per sample",
    )

    # --- admission control -------------------------------------------------------------------
    max_queue_rows: int = Field(
        4096, ge=1, description="Rows (images) admitted and not yet answered; beyond: 503"
    )
    request_timeout: float = Field(
        10.0, gt=0, description="Seconds a request may wait for the model; beyond: 503"
    )
    max_rows_per_call: int = Field(
        256, ge=1, description="Most rows in one SavedModel call; larger requests are split"
    )
    decode_concurrency: int = Field(2, ge=1, description="Uploads decoded at once")
    decode_memory_bytes: int = Field(
        256 * MiB,
        ge=16 * MiB,
        description="Memory the uploads being decoded may take, all requests together; "
        "beyond, they wait their turn (an image that can never fit: 413)",
    )

    # --- HTTP server (vae-serve) ---------------------------------------------------------------
    host: str = Field("127.0.0.1", description="vae-serve's bind address")
    port: int = Field(8000, ge=0, le=65535, description="vae-serve's port")
    # Two, measured on 2 cores: generate 1,159 -> 2,377 req/s at 16 clients (0.16 -> 0.33x a
    # bare FastAPI endpoint), for a second copy of the model in memory (~600 MB).
    workers: int = Field(
        2, ge=1, description="vae-serve's processes, each with the model: one per core"
    )
    max_connections: int = Field(
        1024, ge=1, description="Open connections and requests at once; beyond: 503 at once"
    )
    keep_alive_seconds: int = Field(5, ge=1, description="Idle keep-alive connections close after")
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds for a client to send a request's headers"
    )
    body_timeout: float = Field(
        10.0, gt=0, description="Seconds a request body may stall between two chunks"
    )
    max_header_bytes: int = Field(
        32 * 1024, ge=1024, description="Largest request line plus headers (beyond: 431)"
    )
    body_grace_seconds: float = Field(
        10.0,
        gt=0,
        description="Seconds a request body may take whatever its rate; after them it must "
        "average VAE_BODY_MIN_RATE (then 408 and close)",
    )
    body_min_rate: int = Field(
        500,
        ge=1,
        description="Bytes a second a request body must average after VAE_BODY_GRACE_SECONDS "
        "(Apache mod_reqtimeout's MinRate): a trickle is cut, a slow link is not",
    )

    # --- clients: who may use the service, and how much of it ---------------------------------
    api_keys_file: Path | None = Field(
        None,
        description="API keys, one `name:<sha256 hex of the key>` a line (`vae-keys new NAME` "
        "makes one); unset: no key needed. Re-read when it changes",
    )
    metrics_keys: str | None = Field(
        None,
        description="With API keys: the names of the keys that may read /metrics, "
        "comma-separated; unset: any valid key",
    )
    trusted_proxies: str = Field(
        "",
        description="Addresses or networks (CIDR), comma-separated, whose X-Forwarded-For "
        "names the client (the balancer); empty: none, the client is the peer address",
    )
    client_max_connections: int = Field(
        128,
        ge=0,
        description="Connections at once from one client address, per worker (trusted proxies "
        "exempt); beyond: 429 as they connect; 0: no limit",
    )
    client_max_requests: int = Field(
        64,
        ge=0,
        description="Requests in flight from one client (its key, else its address), per "
        "worker; beyond: 429; 0: no limit",
    )
    client_max_queue_rows: int | None = Field(
        None,
        ge=1,
        description="Rows (images) one client may have admitted at once, per worker; beyond: "
        "429; unset: a quarter of VAE_MAX_QUEUE_ROWS",
    )
    client_rate: float = Field(
        0.0,
        ge=0,
        allow_inf_nan=False,
        description="Requests a second one client may send (token bucket), per worker; "
        "beyond: 429; 0: no limit",
    )
    client_burst: int = Field(
        50, ge=1, description="Requests one client may send at once above VAE_CLIENT_RATE"
    )

    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Logging level"
    )
    access_log: bool = Field(
        False,
        description="One log line per request (uvicorn's access log); requests are "
        "counted in /metrics either way",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("model_versions")
    @classmethod
    def _versions(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().lower() == "all":
            return "all"
        try:
            numbers = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ValueError('must be "all" or version numbers separated by commas') from None
        if not numbers or min(numbers) < 1:
            raise ValueError("versions are positive integers")
        return ",".join(str(v) for v in sorted(set(numbers)))

    @model_validator(mode="after")
    def _one_policy(self) -> Settings:
        if self.model_version is not None and self.model_versions is not None:
            raise ValueError("set VAE_MODEL_VERSION or VAE_MODEL_VERSIONS, not both")
        return self

    @property
    def queue_rows_per_client(self) -> int:
        """The rows one client may have admitted at once (VAE_CLIENT_MAX_QUEUE_ROWS)."""
        return self.client_max_queue_rows or max(1, self.max_queue_rows // 4)

    def public(self) -> dict[str, object]:
        """The effective settings as ``GET /v1/model`` shows them (no host paths)."""
        values = self.model_dump(exclude={"model_dir", "api_keys_file"})
        return {f"VAE_{name.upper()}": value for name, value in values.items()}


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
