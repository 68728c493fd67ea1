"""The API-key scheme as the OpenAPI description declares it: the docs UI's "Authorize" sends
the key with every request it makes.

The key itself is checked before the request's body is read, by ``app.edge.clients`` (401 with
``WWW-Authenticate``); this dependency, added to the API's routers when keys are configured,
declares FastAPI's ``HTTPBearer`` scheme and checks that the edge found a valid key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.edge.clients import KEY

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="APIKey",
    description="An API key: `Authorization: Bearer <key>` (VAE_API_KEYS_FILE; `vae-keys new "
    "NAME` makes one)",
)


async def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> None:
    """401 unless the edge found a valid key on this request."""
    if request.scope.get(KEY) is None:
        raise HTTPException(
            401,
            detail="an API key is needed: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": 'Bearer realm="vae-digits"'},
        )
