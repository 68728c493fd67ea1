"""``vae-serve``: run the service with uvicorn and the settings' connection limits."""

from __future__ import annotations

import argparse

from app.config import get_settings
from app.edge.server import run


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``vae-serve``; flags override VAE_HOST, VAE_PORT and VAE_WORKERS."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="vae-serve", description="Serve the VAE over HTTP.")
    parser.add_argument("--host", default=settings.host, help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=settings.port, help="(default %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=settings.workers,
        help="processes, each with its own copy of the model (default "
        "%(default)s); /metrics adds up all of them",
    )
    args = parser.parse_args(argv)
    run(settings, args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
