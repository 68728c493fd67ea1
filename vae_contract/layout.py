"""Where versions live: ``<model-dir>/vae/<version>/``, TensorFlow Serving's layout.

A version folder holds the SavedModel (``saved_model.pb``, ``variables/``), ``metadata.json``,
the evaluation pictures in ``report/`` and, optionally, TensorFlow Serving's warm-up requests
in ``assets.extra/``. It is published complete (written under a dotted staging name, then
renamed) and never changed afterwards.
"""

from __future__ import annotations

from pathlib import Path

MODEL_NAME = "vae"
METADATA_FILE = "metadata.json"
REPORT_DIR = "report"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
IMAGE_SHAPE = (28, 28)


def model_base(model_dir: Path | str) -> Path:
    """``<model_dir>/vae``: the folder whose numbered subfolders are the versions."""
    return Path(model_dir) / MODEL_NAME


def list_versions(base: Path | str) -> list[int]:
    """The published versions under ``base`` (``<model_dir>/vae``), ascending.

    Only folders named by a positive integer count: staging folders (``.export-*``) and
    anything else are ignored, as TensorFlow Serving does.
    """
    base = Path(base)
    try:
        entries = list(base.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        int(p.name) for p in entries if p.name.isdigit() and int(p.name) > 0 and p.is_dir()
    )
