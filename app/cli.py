"""The service's commands: ``vae-serve`` (uvicorn with the settings' limits) and ``vae-keys``
(API keys for ``VAE_API_KEYS_FILE``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.config import get_settings
from app.edge.api_keys import KeyFileError, key_line, new_key, parse_keys
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


def keys(argv: list[str] | None = None) -> None:
    """Entry point of ``vae-keys``: make an API key and the line of VAE_API_KEYS_FILE for it."""
    parser = argparse.ArgumentParser(
        prog="vae-keys",
        description="Make API keys for VAE_API_KEYS_FILE (only their SHA-256 is stored).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="a new key: prints it once, and its file line")
    new.add_argument("name", help="who the key is for (letters, digits, '_', '.', '-')")
    new.add_argument(
        "--append",
        type=Path,
        metavar="FILE",
        help="also append the line to FILE (created 0644: it holds hashes, never a key)",
    )
    args = parser.parse_args(argv)
    key = new_key()
    try:
        line = key_line(args.name, key)
    except KeyFileError as error:
        parser.error(str(error))
    if args.append is not None:
        existing = args.append.read_text() if args.append.exists() else ""
        if args.name in parse_keys(existing, str(args.append)):
            parser.error(f"{args.append} already has a key named {args.name!r}")
        fd = os.open(args.append, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        with os.fdopen(fd, "a") as file:
            file.write(("" if not existing or existing.endswith("\n") else "\n") + line + "\n")
    print(f"key:  {key}")
    print(f"line: {line}")
    print(
        f"Give the key to {args.name}; it is stored nowhere. "
        + (f"The line is in {args.append}." if args.append else "Add the line to the keys file."),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
