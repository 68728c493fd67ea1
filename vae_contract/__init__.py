"""The exported model's contract: what ``training/`` writes and ``app/`` reads, described once.

- ``layout``: a version is the folder ``<model-dir>/vae/<version>/`` (TensorFlow Serving's
  layout), published complete and never changed;
- ``signatures``: the SavedModel's signatures, typed (``SIGNATURES``): the export, the
  service's checks, the tests' stand-in model and the warm-up requests all derive from it;
- ``metadata``: ``metadata.json`` (``ModelMetadata``), validated by pydantic.

Both packages import it; it needs only pydantic and NumPy, so the lean serving install and the
training install share it. Beside it, ``vae_contract.quiet`` imports TensorFlow without its
start-up notices, as both sides load the artefact with it.
"""

from vae_contract.layout import (
    IMAGE_SHAPE,
    METADATA_FILE,
    MODEL_NAME,
    REPORT_DIR,
    WARMUP_FILE,
    list_versions,
    model_base,
)
from vae_contract.metadata import (
    DatasetInfo,
    LatentAxes,
    ModelMetadata,
    PriorInfo,
    ScoreReference,
    iwae_estimate,
)
from vae_contract.signatures import (
    ANY_DIGIT,
    REQUIRED_SIGNATURES,
    SERVING_DEFAULT,
    SIGNATURES,
    Signature,
    SignatureContract,
    SignatureSpec,
    Tensor,
    TensorSpec,
)

__all__ = [
    "ANY_DIGIT",
    "IMAGE_SHAPE",
    "METADATA_FILE",
    "MODEL_NAME",
    "REPORT_DIR",
    "REQUIRED_SIGNATURES",
    "SERVING_DEFAULT",
    "SIGNATURES",
    "WARMUP_FILE",
    "DatasetInfo",
    "LatentAxes",
    "ModelMetadata",
    "PriorInfo",
    "ScoreReference",
    "Signature",
    "SignatureContract",
    "SignatureSpec",
    "Tensor",
    "TensorSpec",
    "iwae_estimate",
    "list_versions",
    "model_base",
]
