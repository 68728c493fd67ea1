"""A loaded, warm version ready to answer: its model, its batcher, and the requests holding it.

``Servable.run`` is the run stage every route goes through: the call is merged with others by
the version's batcher, and the answer is encoded on the inference thread right after it, or in
a worker thread when it is heavy (it would hold up the small requests queued behind it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.serving.batching import Answer, Batcher
from app.serving.errors import BatcherClosed, Unavailable
from app.serving.model import Model


@dataclass(eq=False)
class Servable:
    """A loaded version with its batcher; ``leases`` counts the requests holding it."""

    model: Model
    batcher: Batcher
    render_slot: asyncio.Semaphore = field(repr=False)
    leases: int = 0  # requests running on this version (ServedModel.hold)
    retiring: bool = False
    version: int = field(init=False)

    def __post_init__(self) -> None:
        self.version = self.model.version  # still known once the model is unloaded

    async def run(
        self, signature: str, inputs: dict[str, np.ndarray], answer: Answer | None = None
    ) -> Any:
        """Run ``signature`` through the batcher and encode the answer (``answer.encode``), or
        return the outputs themselves without an answer."""
        rows = max((len(v) for v in inputs.values() if np.ndim(v) > 0), default=0)
        try:
            if answer is not None and answer.heavy(rows):
                outputs = await self.batcher.run(signature, inputs)
                async with self.render_slot:  # one big picture at a time: bounded memory
                    result = await run_in_threadpool(answer.encode, outputs)
            else:
                result = await self.batcher.run(signature, inputs, answer)
        except BatcherClosed:  # cannot happen to a held version; said clearly if it does
            raise Unavailable("the model version is being unloaded; retry") from None
        if isinstance(result, Response):
            # Appended to the encoded headers: MutableHeaders would copy them all (5 µs).
            result.raw_headers.append((b"x-model-version", str(self.version).encode()))
        return result
