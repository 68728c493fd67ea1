"""The routes' shared dependencies, as ``Annotated`` aliases.

``create_app`` builds one ``Runtime`` (settings, the served model, admission control, the
upload reader) and keeps it on ``app.state.runtime``: the only thing kept there. A handler that
uses the model takes ``ModelDep`` (the version named by ``?version=``, or the newest; a standard
protocol's routes have their own, reading the version from the path, through ``lease``): one
dependency, as each costs FastAPI a full solving pass per request (three of them took 60 µs of a
generate request's 460 on the event loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Query, Request

from app.config import Settings
from app.edge.clients import CLIENT
from app.media.uploads import UploadReader
from app.serving.admission import Admission
from app.serving.batching import Answer
from app.serving.lifecycle import ServedModel
from app.serving.servable import Servable


@dataclass(frozen=True)
class Runtime:
    """The objects that own the service's concerns, one each."""

    settings: Settings
    served: ServedModel
    admission: Admission
    uploads: UploadReader


@dataclass(frozen=True)
class ModelContext:
    """What a handler needs to use the model: the version it holds, the settings, admission
    control and the upload reader."""

    servable: Servable
    settings: Settings
    admission: Admission
    uploads: UploadReader
    client: str | None = None  # who asks (app.edge.clients): its key, else its address

    def admit(self, rows: int, endpoint: str) -> AbstractAsyncContextManager[None]:
        """Hold ``rows`` of the service's capacity and of the client's share, within the
        request deadline (or 503, or 429 for a client over its share)."""
        return self.admission.admit(rows, endpoint, self.client)

    async def run(
        self, signature: str, inputs: dict[str, np.ndarray], answer: Answer | None = None
    ) -> Any:
        """The run stage: ``signature`` on ``inputs`` through the version's batcher, encoded by
        ``answer`` (or the outputs themselves)."""
        return await self.servable.run(signature, inputs, answer)


# Dependencies are async: FastAPI would run plain functions in its thread pool.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_served(request: Request) -> ServedModel:
    return request.app.state.runtime.served


@contextmanager
def lease(request: Request, version: int | None) -> Iterator[ModelContext]:
    """``version`` (default: the newest), held until the answer is sent; 503 saying why while
    none is loaded, 404 for a version that is not served."""
    runtime: Runtime = request.app.state.runtime
    with runtime.served.lease(version) as servable:
        yield ModelContext(
            servable,
            runtime.settings,
            runtime.admission,
            runtime.uploads,
            request.scope.get(CLIENT),
        )


async def use_model(
    request: Request,
    version: Annotated[
        int | None,
        Query(ge=1, description="Model version to use (default: the newest served)"),
    ] = None,
) -> AsyncIterator[ModelContext]:
    """The version named by ``?version=``, or the newest."""
    with lease(request, version) as context:
        yield context


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServedDep = Annotated[ServedModel, Depends(get_served)]
ModelDep = Annotated[ModelContext, Depends(use_model)]
