"""The routes' shared dependencies, as ``Annotated`` aliases.

``create_app`` builds one ``Runtime`` (settings, the served model, admission control, the
upload reader) and keeps it on ``app.state.runtime``: the only thing kept there. A handler that
uses the model takes ``ModelDep``: the version named by ``?version=``, or the newest (a standard
protocol's routes have their own, reading the version from the path, through ``model_context``).

The version is picked when the dependency is solved and held (not unloaded by a swap) from
``admit`` to the end of its block, where the model runs; nothing awaits in between. Plain
``async`` functions, one per handler: FastAPI solves each in a pass of its own, and a ``yield``
dependency adds an exit stack and a cancel scope to every request (a fifth of a generate
request's time on the event loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Query, Request

from app.config import Settings
from app.edge.clients import CLIENT
from app.media.uploads import UploadReader
from app.serving.admission import Admission, Ticket
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
    """What a handler needs to use the model: the version it picked, the settings, admission
    control and the upload reader."""

    servable: Servable
    served: ServedModel
    settings: Settings
    admission: Admission
    uploads: UploadReader
    client: str | None = None  # who asks (app.edge.clients): its key, else its address

    def admit(self, rows: int, endpoint: str) -> Admitted:
        """Hold the version, and ``rows`` of the service's capacity and of the client's share,
        within the request deadline (or 503, or 429 for a client over its share)."""
        return Admitted(
            self.served, self.servable, self.admission.admit(rows, endpoint, self.client)
        )

    async def run(
        self, signature: str, inputs: dict[str, np.ndarray], answer: Answer | None = None
    ) -> Any:
        """The run stage: ``signature`` on ``inputs`` through the version's batcher, encoded by
        ``answer`` (or the outputs themselves)."""
        return await self.servable.run(signature, inputs, answer)


class Admitted:
    """A request's admission with its version held: an async context manager."""

    __slots__ = ("served", "servable", "ticket")

    def __init__(self, served: ServedModel, servable: Servable, ticket: Ticket):
        self.served = served
        self.servable = servable
        self.ticket = ticket

    async def __aenter__(self) -> None:
        self.served.hold(self.servable)
        try:
            await self.ticket.__aenter__()
        except BaseException:
            self.served.release(self.servable)
            raise

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.ticket.__aexit__(kind, error, tb)
        finally:
            self.served.release(self.servable)


# Dependencies are async: FastAPI would run plain functions in its thread pool.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_served(request: Request) -> ServedModel:
    return request.app.state.runtime.served


def model_context(request: Request, version: int | None) -> ModelContext:
    """``version`` (default: the newest); 503 saying why while none is loaded, 404 for a
    version that is not served."""
    runtime: Runtime = request.app.state.runtime
    return ModelContext(
        runtime.served.get(version),
        runtime.served,
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
) -> ModelContext:
    """The version named by ``?version=``, or the newest."""
    return model_context(request, version)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ServedDep = Annotated[ServedModel, Depends(get_served)]
ModelDep = Annotated[ModelContext, Depends(use_model)]
