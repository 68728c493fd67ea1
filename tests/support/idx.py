"""MNIST files as they are published: IDX arrays, raw or gzipped, written for the loader."""

from __future__ import annotations

import gzip
import struct

import numpy as np

from training import data


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(directory, mnist, compress=False):
    directory.mkdir(parents=True, exist_ok=True)
    for name, filename in data.IDX_FILES.items():
        raw = idx_bytes(getattr(mnist, name))
        if compress:
            (directory / (filename + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))
        else:
            (directory / filename).write_bytes(raw)
