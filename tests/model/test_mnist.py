"""MNIST itself: the whole of real MNIST read from each source, hashed and checked."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.idx import write_idx_dir
from training import data
from training.data import DataError


def test_arrays_match_recorded_checksums(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.checksums() == data.ARRAY_SHA256


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


def test_gzipped_idx_directory_loads(tmp_path, mnist):
    write_idx_dir(tmp_path, mnist, compress=True)
    loaded = data.from_data_dir(tmp_path)
    np.testing.assert_array_equal(loaded.x_test, mnist.x_test)


def test_npz_loads_and_a_changed_array_is_a_checksum_error(tmp_path, mnist):
    arrays = {name: getattr(mnist, name) for name in data.ARRAY_SHA256}
    np.savez(tmp_path / "mnist.npz", **arrays)
    assert data.load_mnist(tmp_path).source.endswith("mnist.npz")
    arrays["x_test"] = arrays["x_test"].copy()
    arrays["x_test"][0, 0, 0] = 255
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DataError, match="x_test SHA-256"):
        data.load_mnist(tmp_path)


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
