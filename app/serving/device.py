"""Where the model runs: the GPU when TensorFlow sees one (memory growth on), else the CPU."""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def select_device(preference: str, gpus: list[str]) -> str:
    """TensorFlow device name for a preference ("auto", "cpu", "gpu") and the visible GPUs."""
    if preference == "cpu":
        return "/CPU:0"
    if preference == "gpu" and not gpus:
        raise RuntimeError("VAE_DEVICE=gpu, but TensorFlow sees no GPU")
    return "/GPU:0" if gpus else "/CPU:0"


def configure_tensorflow(preference: str, intra_op_threads: int, inter_op_threads: int) -> str:
    """Set thread pools and GPU memory growth, then pick the device.

    Must run before TensorFlow's runtime starts (the first op); later calls keep what is set.
    Thread pools are sized from the host's cores by default, not the container's CPU quota,
    hence the settings.
    """
    gpus = tf.config.list_physical_devices("GPU")
    try:
        if intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
        for gpu in gpus:
            # Without growth TensorFlow reserves the whole card for a model of a few MB.
            tf.config.experimental.set_memory_growth(gpu, True)
        if preference == "cpu" and gpus:
            tf.config.set_visible_devices([], "GPU")
    except RuntimeError as error:
        log.warning("TensorFlow already initialised, keeping its settings: %s", error)
    device = select_device(preference, [gpu.name for gpu in gpus])
    log.info("model device: %s (GPUs visible: %d)", device, len(gpus))
    return device
