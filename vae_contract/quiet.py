"""TensorFlow without its start-up noise, and with its news.

Importing TensorFlow 2.21 prints, before its logging is set up and whatever
``TF_CPP_MIN_LOG_LEVEL`` says (tensorflow/tensorflow#100442), a oneDNN notice, "Could not find
cuda drivers" and, at the first device query on a machine without a GPU, an *error*
"failed call to cuInit". Those lines are dropped at the file-descriptor level (they come from
C++) while TensorFlow loads and lists its devices; every other line passes through, and the
CUDA lines pass too when the machine has an NVIDIA device (then they are news). After start-up
``TF_CPP_MIN_LOG_LEVEL`` works: it defaults to 1 here (C++ warnings and errors shown, info such
as "XLA service initialized" not), and a value the user sets wins.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

STARTUP_NOISE = [
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"oneDNN custom operations are on",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"rebuild TensorFlow with the appropriate compiler flags",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"TF-TRT Warning: Could not find TensorRT",
]
# Noise only where there is no NVIDIA device: with one, these say why it is not used.
NO_GPU_NOISE = [
    r"Could not find cuda drivers on your machine",
    r"failed call to cuInit",
]

# Runs in a child process, so that the lines still come out if TensorFlow aborts the parent.
_FILTER = """
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which flushes to us
noise = re.compile(sys.argv[1].encode())
for line in sys.stdin.buffer:
    if not noise.search(line):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


def noise_pattern(has_nvidia_device: bool | None = None) -> re.Pattern[str]:
    """The lines to drop: start-up notices, plus the CUDA ones on a machine without a GPU."""
    if has_nvidia_device is None:
        has_nvidia_device = Path("/dev/nvidiactl").exists()
    patterns = STARTUP_NOISE + ([] if has_nvidia_device else NO_GPU_NOISE)
    return re.compile("|".join(patterns))


@contextmanager
def filtered_stderr(noise: re.Pattern[str]) -> Iterator[None]:
    """While the block runs, lines written to file descriptor 2 (Python's and C++'s) that match
    ``noise`` are dropped; the others reach the real stderr unchanged and in order."""
    sys.stderr.flush()
    saved = os.dup(2)
    lines = subprocess.Popen(
        [sys.executable, "-c", _FILTER, noise.pattern],
        stdin=subprocess.PIPE,
        stdout=saved,
        stderr=saved,
    )
    assert lines.stdin is not None
    os.dup2(lines.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end is now lines.stdin
        os.close(saved)
        lines.stdin.close()
        lines.wait()


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` and list its devices, without the start-up noise; Python's
    ``tensorflow`` and ``absl`` loggers show warnings and errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" not in sys.modules:
        with filtered_stderr(noise_pattern()):
            import tensorflow as tf

            tf.config.list_physical_devices()  # the first device query prints the cuInit error
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return sys.modules["tensorflow"]
