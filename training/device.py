"""Pick the training device: the GPU when TensorFlow sees one (memory growth on), else the CPU."""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def configure_device() -> str:
    """Enable memory growth on every visible GPU and return a sentence saying what is used."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:  # the runtime was already initialised
            log.warning("could not enable memory growth on %s: %s", gpu.name, error)
    if gpus:
        return f"Training on GPU: {', '.join(g.name for g in gpus)}"
    return "Training on CPU (TensorFlow sees no GPU)"
