"""The baseline of the serving benchmark: a FastAPI endpoint with no model and no images.

It parses the same JSON bodies and answers a small constant, so the service's figures beside it
show what the model, validation and PNG encoding add to plain FastAPI + uvicorn.
"""

from typing import Annotated, Any

from fastapi import Body, FastAPI

app = FastAPI()
ANSWER = {"images": ["iVBORw0KGgo="], "seed": 0}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/v1/generate")
async def generate(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    return ANSWER


@app.post("/v1/decode")
async def decode(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    return ANSWER
