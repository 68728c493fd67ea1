"""Each version's state, as TensorFlow Serving reports it, and what tells when its files
changed.

A version goes START -> LOADING -> AVAILABLE -> UNLOADING -> END; one that failed to load ends
at END with TensorFlow Serving's error code and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class State(StrEnum):
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass
class VersionStatus:
    """One version's state and, when it failed, TensorFlow Serving's error code and why."""

    version: int
    state: State
    error_code: str = "OK"
    error_message: str = ""


def fingerprint(version_dir: Path) -> tuple:
    """What changes when a version's files do (names, sizes, times, modes): a failed version
    is tried again only then (a copy that finished, a chmod that fixed it)."""
    entries: list[tuple[object, ...]] = []
    for root, dirs, files in os.walk(version_dir):
        for name in sorted(dirs + files):
            try:
                stat = os.stat(Path(root) / name)
            except OSError:
                continue
            entries.append((root, name, stat.st_size, stat.st_mtime_ns, stat.st_mode))
    try:
        top = os.stat(version_dir)
        entries.append((top.st_mtime_ns, top.st_mode))
    except OSError:
        pass
    return tuple(entries)
