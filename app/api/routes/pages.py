"""The HTML pages: the latent explorer at ``/``, and the API docs (``/docs``, ``/redoc``) with
their JavaScript and CSS served from the app, so they work without the internet.

Everything a page loads is under ``/static`` (``app/static/``: the explorer's own files, and
Swagger UI and ReDoc vendored at pinned versions in ``app/static/vendor/``, see its README).
Each page carries a Content-Security-Policy that allows only what it loads: the explorer has no
inline script at all; Swagger UI needs one inline script (its settings), allowed by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
STATIC = "/static"
VENDOR = f"{STATIC}/vendor"
FAVICON = f"{STATIC}/favicon.svg"

router = APIRouter(include_in_schema=False)

# Sent with every HTML page: no sniffing, no referrer leaks, never inside another site's frame.
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-cache",
}
_COMMON_CSP = "default-src 'none'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
EXPLORER_CSP = (
    f"{_COMMON_CSP}; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "form-action 'none'; manifest-src 'self'"
)
# Swagger UI and ReDoc set element styles inline (React, styled-components), show answers'
# images as blob: URLs, and ReDoc runs its search in a blob: worker.
DOCS_CSP = (
    f"{_COMMON_CSP}; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; worker-src 'self' blob:; form-action 'self'"
)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def page(html: str, csp: str) -> HTMLResponse:
    """An HTML page with the security headers and its Content-Security-Policy."""
    return HTMLResponse(html, headers={**PAGE_HEADERS, "Content-Security-Policy": csp})


def html_of(response: HTMLResponse) -> str:
    """The text of one of FastAPI's docs pages, to serve with our own headers."""
    return bytes(response.body).decode()


def script_hashes(html: str) -> str:
    """CSP sources allowing exactly the inline scripts of ``html``."""
    digests = (hashlib.sha256(script.encode()).digest() for script in INLINE_SCRIPT.findall(html))
    return " ".join(f"'sha256-{base64.b64encode(d).decode()}'" for d in digests)


@router.get("/")
async def explorer() -> Response:
    """The latent explorer (``app/static/index.html``)."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={**PAGE_HEADERS, "Content-Security-Policy": EXPLORER_CSP},
    )


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    """Swagger UI, from the vendored bundle."""
    root = request.scope.get("root_path", "").rstrip("/")
    html = html_of(
        get_swagger_ui_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{root}{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{FAVICON}",
            # No badge fetched from validator.swagger.io: the page must work offline.
            swagger_ui_parameters={"validatorUrl": None},
        )
    )
    return page(html, f"{DOCS_CSP}; script-src 'self' {script_hashes(html)}")


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    """ReDoc, from the vendored bundle, without Google Fonts."""
    root = request.scope.get("root_path", "").rstrip("/")
    html = html_of(
        get_redoc_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{root}{VENDOR}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{FAVICON}",
            with_google_fonts=False,
        )
    )
    return page(html, f"{DOCS_CSP}; script-src 'self'")


class Assets(StaticFiles):
    """The static files, never sniffed as another type."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_static(app: FastAPI) -> None:
    """Serve ``app/static/`` under ``/static``."""
    app.mount(STATIC, Assets(directory=STATIC_DIR), name="static")
