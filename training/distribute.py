"""Where training runs: one device, all local devices, or several workers (tf.distribute).

- ``default``: one device, the GPU when TensorFlow sees one, else the CPU.
- ``mirrored``: ``MirroredStrategy`` over every local GPU; on a machine without one, over
  ``cpu_devices`` logical CPU devices (to try the distributed path on a laptop or in tests).
- ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster and this process's place in it
  come from ``TF_CONFIG``. Every worker trains; only the chief writes the export and the logs.

The global batch is the preset's ``batch_size`` whatever the strategy; each replica takes its
share. TensorFlow is imported inside the functions, so the CLI lists the choices without it.
"""

from __future__ import annotations

import json
import logging
import os
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)


class Strategy(StrEnum):
    DEFAULT = "default"
    MIRRORED = "mirrored"
    MULTIWORKER = "multiworker"


def configure_devices(cpu_devices: int | None = None) -> str:
    """Enable memory growth on every visible GPU; on a machine without one, split the CPU into
    ``cpu_devices`` logical devices. Must run before TensorFlow's runtime starts. Returns a
    sentence saying what training will use."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as error:  # the runtime was already initialised
            log.warning("could not enable memory growth on %s: %s", gpu.name, error)
    if gpus:
        return f"Training on GPU: {', '.join(g.name for g in gpus)}"
    if cpu_devices and cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)]
        )
        return f"Training on CPU, split into {cpu_devices} logical devices (TensorFlow sees no GPU)"
    return "Training on CPU (TensorFlow sees no GPU)"


def make_strategy(kind: Strategy) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy for ``kind`` (after ``configure_devices``)."""
    import tensorflow as tf

    if kind is Strategy.MIRRORED:
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if kind is Strategy.MULTIWORKER:
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy multiworker needs TF_CONFIG (the cluster and this "
                "worker's task), see TensorFlow's multi-worker training guide"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the export, the logs and the shared checkpoint: always,
    except on the non-chief workers of a multi-worker cluster."""
    return strategy.extended.should_checkpoint


def wait_for_all_workers(strategy: tf.distribute.Strategy) -> None:
    """Return when every worker has called this (a no-op on one machine). Workers that left
    while the chief still exported made the chief log a scary "tasks have crashed" error
    (measured); meeting here first, they all leave together."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):

        @tf.function
        def meet() -> tf.Tensor:  # a collective sum completes when every replica is in it
            return strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)

        meet()


def worker_name() -> str | None:
    """``"<task type>-<index>"`` of this process in ``TF_CONFIG``; None outside a cluster."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task")
    return f"{task['type']}-{task['index']}" if task else None
