"""The served version's report: the pictures its evaluation drew (samples, reconstructions,
the latent map, a traversal, per-digit samples, training curves)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from starlette.responses import FileResponse, Response

from app.api.deps import ModelDep, ServedDep
from app.api.openapi import OVERLOADED, VERSION_NOT_SERVED
from app.api.schemas import Problem, ReportPictures
from app.edge import negotiation
from app.serving.lifecycle import ServedModel
from app.serving.servable import Servable
from vae_contract import REPORT_DIR

PICTURE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.png$"

router = APIRouter(tags=["model"])


def report_folder(served: ServedModel, servable: Servable) -> Path:
    return served.base / str(servable.version) / REPORT_DIR


@router.get(
    "/v1/model/report",
    response_model=ReportPictures,
    responses={**VERSION_NOT_SERVED, **OVERLOADED},
)
async def report_pictures(model: ModelDep, served: ServedDep) -> dict[str, Any]:
    """The pictures the evaluation drew for the served version (or `?version=`): random
    samples, reconstructions, the latent map, a traversal, per-digit samples, curves."""
    servable = model.servable
    folder = report_folder(served, servable)
    names = sorted(p.name for p in folder.glob("*.png") if re.match(PICTURE_NAME, p.name))
    return {"version": servable.version, "pictures": names}


@router.get(
    "/v1/model/report/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {negotiation.PNG: {}}, "description": "The picture"},
        404: {"model": Problem, "description": "No such picture"},
        **OVERLOADED,
    },
)
async def report_picture(
    name: Annotated[str, PathParam(pattern=PICTURE_NAME, description="e.g. samples.png")],
    model: ModelDep,
    served: ServedDep,
) -> Response:
    """One picture of the served version's report, by the name `GET /v1/model/report`
    lists."""
    servable = model.servable
    path = report_folder(served, servable) / name
    if not path.is_file():
        raise HTTPException(
            404,
            detail=f"version {servable.version} has no report picture "
            f"{name!r}; GET /v1/model/report lists them",
        )
    return FileResponse(
        path, media_type=negotiation.PNG, headers={"X-Content-Type-Options": "nosniff"}
    )
