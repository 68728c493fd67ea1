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


async def get_served(request: Request) -> ServedModel:
    return request.app.state.runtime.served


@dataclass(frozen=True)
class ModelContext:
    """What a handler needs to run the model: the version it holds, and the runtime's
    settings, admission control and upload decoder."""

    servable: Servable
    settings: Settings
    admission: Admission
    uploads: UploadDecoder


async def use_model(
    request: Request,
    version: Annotated[
        int | None,
        Query(ge=1, description="Model version to use (default: the newest served)"),
    ] = None,
) -> AsyncIterator[ModelContext]:
    """The requested (or newest) model version, held until the answer is sent; 503 saying
    why while none is loaded, 404 for a version that is not served. One dependency for all a
    handler needs: each dependency costs FastAPI a full solving pass per request (three of
    them took 60 µs of a generate request's 460 on the event loop)."""
    runtime: Runtime = request.app.state.runtime
    with runtime.served.lease(version) as servable:
        yield ModelContext(servable, runtime.settings, runtime.admission, runtime.uploads)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServedDep = Annotated[ServedModel, Depends(get_served)]
ModelDep = Annotated[ModelContext, Depends(use_model)]
