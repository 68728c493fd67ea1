"""API keys: who may use the service.

The keys live in a file (``VAE_API_KEYS_FILE``: a Docker or Kubernetes secret, say), one
``name:<sha256 hex of the key>`` a line, ``#`` comments: only hashes are on disk, never a key.
A client sends its key as ``Authorization: Bearer <key>``; the key's SHA-256 is compared with
every hash in constant time (``hmac.compare_digest``, no early exit). The file is read again
when it changes, so a key removed from it (revoked) stops working within a second; a file that
no longer parses keeps the keys it last had (and says so in the log), so a half-written file
never locks every client out. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")
RECHECK_SECONDS = 1.0  # how often the file's modification is looked at (one stat)


class KeyFileError(ValueError):
    """A keys file that cannot be used; the message names the line."""


def hash_key(key: str) -> str:
    """The SHA-256 of a key, as the keys file holds it (hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new random key: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def key_line(name: str, key: str) -> str:
    """The keys file's line for ``key`` under ``name``."""
    if not NAME.match(name):
        raise KeyFileError(f"a key's name is letters, digits, '_', '.' or '-': {name!r}")
    return f"{name}:{hash_key(key)}"


def parse_keys(text: str, source: str = "keys file") -> dict[str, bytes]:
    """``name -> digest`` of every key in a keys file's text."""
    keys: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, digest = line.partition(":")
        name, digest = name.strip(), digest.strip().lower()
        if not NAME.match(name) or not DIGEST.match(digest):
            raise KeyFileError(
                f"{source}, line {number}: expected name:<64 hex digits of the key's SHA-256>"
            )
        if name in keys:
            raise KeyFileError(f"{source}, line {number}: the name {name!r} is used twice")
        keys[name] = bytes.fromhex(digest)
    return keys


@dataclass
class _Snapshot:
    stamp: tuple[int, int, int]
    keys: dict[str, bytes]


class ApiKeys:
    """The keys of ``path``: which key, by name, a bearer token is."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._snapshot = self._read()  # raises: a service must not start with a bad file
        self._checked = time.monotonic()

    @property
    def names(self) -> list[str]:
        return sorted(self._snapshot.keys)

    def name_of(self, token: str | None) -> str | None:
        """The name of the key ``token`` is, or None (no token, or not a key of the file)."""
        self._reload_if_changed()
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for name, expected in self._snapshot.keys.items():
            if hmac.compare_digest(digest, expected):
                found = name
        return found

    def _stamp(self) -> tuple[int, int, int]:
        stat = os.stat(self.path)
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def _read(self) -> _Snapshot:
        try:
            stamp = self._stamp()
            text = self.path.read_text()
        except OSError as error:
            raise KeyFileError(f"VAE_API_KEYS_FILE cannot be read: {error.strerror}") from None
        keys = parse_keys(text, "VAE_API_KEYS_FILE")
        if not keys:
            raise KeyFileError("VAE_API_KEYS_FILE holds no key: no client could get in")
        return _Snapshot(stamp, keys)

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        self._checked = now
        try:
            if self._stamp() == self._snapshot.stamp:
                return
            self._snapshot = self._read()
        except (OSError, KeyFileError) as error:
            log.error("API keys not reloaded, the previous ones stay: %s", error)
            return
        log.info("API keys reloaded: %d keys (%s)", len(self.names), ", ".join(self.names))
