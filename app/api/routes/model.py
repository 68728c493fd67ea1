"""The model as a resource: ``GET /v1/model``, the served version described."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import ModelDep, ServedDep
from app.api.openapi import OVERLOADED, VERSION_NOT_SERVED
from app.api.schemas import ModelInfo, VersionInfo

router = APIRouter(tags=["model"])


@router.get("/v1/model", response_model=ModelInfo, responses={**VERSION_NOT_SERVED, **OVERLOADED})
async def model_info(model: ModelDep, served: ServedDep) -> dict[str, Any]:
    """The served model (or `?version=`): its metadata.json (preset, hyperparameters, test
    figures, evaluation), latent size, device, signatures, every version's state, and the
    effective settings."""
    vae = model.servable.model
    return {
        **vae.metadata.model_dump(),
        "version": vae.version,
        "device": "GPU" if "GPU" in vae.device.upper() else "CPU",
        "device_name": vae.device,
        "signatures": sorted(vae.signatures),
        "versions": [VersionInfo(**vars(s)) for s in served.statuses()],
        "settings": model.settings.public(),
    }
