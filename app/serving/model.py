"""What a loaded model version offers the service, and the contract every version must keep.

``app.serving.tensorflow_model.VaeModel`` is the real one (``app.serving.loader`` makes it);
tests load a NumPy stand-in with the same signatures (derived from ``vae_contract.SIGNATURES``)
through ``create_app(load=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.serving.errors import LoadError
from vae_contract import SERVING_DEFAULT, SIGNATURES, ModelMetadata, Signature, SignatureSpec


class Model(Protocol):
    """A loaded model version: its signatures (numpy in, numpy out) and its metadata."""

    version: int
    latent_dim: int
    supports_digit: bool
    metadata: ModelMetadata
    signatures: dict[str, SignatureSpec]
    signature_defs: dict[str, Any]
    device: str

    def call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def warm_up(self) -> float: ...


Loader = Callable[[Path], Model]


def check_contract(signatures: dict[str, SignatureSpec], latent_dim: int) -> None:
    """Every signature the contract names keeps its inputs, outputs, dtypes and shapes; a
    version that breaks it is refused (FAILED_PRECONDITION), never served."""
    for name, spec in signatures.items():
        contract = SIGNATURES.get(Signature.DECODE if name == SERVING_DEFAULT else name)
        problems = contract.mismatches(spec, latent_dim) if contract else []
        if problems:
            raise LoadError(
                "FAILED_PRECONDITION",
                f"the {name} signature breaks the contract: {'; '.join(problems)}; export it "
                "again with this project's vae-train",
            )
