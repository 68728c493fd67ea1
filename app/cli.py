"""``vae-serve``: run the service with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from app.config import get_settings


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``vae-serve``; flags override VAE_HOST and VAE_PORT."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="vae-serve", description="Serve the VAE over HTTP.")
    parser.add_argument("--host", default=settings.host, help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=settings.port, help="(default %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, each with its own copy of the model (default 1)")
    args = parser.parse_args(argv)
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
