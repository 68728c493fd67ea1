"""The shared dependencies of the routes, as ``Annotated`` aliases.

``create_app`` builds one ``Runtime`` (settings, the served model, admission control, the
upload decoder) and keeps it on ``app.state.runtime``: the only thing kept there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from app.admission import Admission
from app.config import Settings
from app.lifecycle import Servable, ServedModel
from app.uploads import UploadDecoder


@dataclass(frozen=True)
class Runtime:
    """The objects that own the service's concerns, one each."""

    settings: Settings
    served: ServedModel
    admission: Admission
    uploads: UploadDecoder


# Dependencies are async: FastAPI would run plain functions in its thread pool.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


async def get_admission(request: Request) -> Admission:
    return request.app.state.runtime.admission


async def get_uploads(request: Request) -> UploadDecoder:
    return request.app.state.runtime.uploads


async def get_served(request: Request) -> ServedModel:
    return request.app.state.runtime.served


async def lease_version(
    request: Request,
    version: Annotated[
        int | None,
        Query(ge=1, description="Model version to use (default: the newest served)"),
    ] = None,
) -> AsyncIterator[Servable]:
    """The requested (or newest) model version, held until the answer is sent; 503 saying
    why while none is loaded, 404 for a version that is not served."""
    with request.app.state.runtime.served.lease(version) as servable:
        yield servable


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
UploadsDep = Annotated[UploadDecoder, Depends(get_uploads)]
ServedDep = Annotated[ServedModel, Depends(get_served)]
VersionDep = Annotated[Servable, Depends(lease_version)]
