"""The real loader: versions loaded with TensorFlow on the configured device."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.serving.model import Loader, Model


def tensorflow_loader(settings: Settings) -> Loader:
    """Load versions with TensorFlow on the configured device. TensorFlow is imported on the
    first load, so that a process that never loads a model never pays for it."""
    device: list[str] = []

    def load(path: Path) -> Model:
        from vae_contract.quiet import import_tensorflow

        import_tensorflow()  # once, without its start-up notices
        from app.serving.device import configure_tensorflow
        from app.serving.tensorflow_model import VaeModel

        if not device:
            device.append(
                configure_tensorflow(
                    settings.device, settings.intra_op_threads, settings.inter_op_threads
                )
            )
        return VaeModel(path, device[0])

    return load
