"""Fast tier: the HTML pages (explorer, /docs, /redoc) are served from the app alone, with
their security headers, and the OpenAPI document describes the explorer's endpoints."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.support.fakes import FakeLoader, make_versions

STATIC = Path(__file__).resolve().parents[3] / "app" / "static"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    model_dir = make_versions(tmp_path_factory.mktemp("models"), 1)
    app = create_app(Settings(model_dir=model_dir, model_poll_seconds=0), FakeLoader())
    with TestClient(app) as client:
        yield client


class Tags(HTMLParser):
    """Every tag with its attributes, and the text of inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script" and "src" not in dict(attrs)

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)

    def handle_endtag(self, tag):
        self._in_script = False


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def loaded_urls(tags: Tags) -> list[str]:
    """What the page loads: scripts, stylesheets, icons, images."""
    return [
        attrs.get("src") or attrs.get("href") or ""
        for tag, attrs in tags.tags
        if tag in ("script", "img") and attrs.get("src") or tag == "link"
    ]


def csp(response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def assert_page_headers(response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_the_explorer_is_served_at_the_root_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_page_headers(response)
    policy = csp(response)
    assert policy["script-src"] == "script-src 'self'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    tags = parse(response.text)
    assert tags.inline_scripts == []
    assert not any("style" in attrs for _, attrs in tags.tags), "inline styles break the CSP"
    for url in loaded_urls(tags):
        assert url.startswith("/static/"), url
        assert client.get(url).status_code == 200, url


def test_static_files_are_served_with_their_types_and_never_sniffed(client):
    for name, media_type in [
        ("explorer.js", "javascript"),
        ("explorer.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert media_type in response.headers["content-type"]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/../main.py").status_code == 404
    assert client.get("/static/missing.js").status_code == 404


def test_the_explorer_script_uses_only_the_api_it_is_served_with(client):
    script = (STATIC / "explorer.js").read_text()
    assert "http://" not in script and "https://" not in script
    for path in set(re.findall(r'"(/v1/[a-z/]+)', script)):
        assert any(p.startswith(path) for p in client.get("/openapi.json").json()["paths"]), path


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_load_nothing_from_another_site(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert_page_headers(response)
    assert "http://" not in response.text and "https://" not in response.text
    urls = loaded_urls(parse(response.text))
    assert urls, "the page loads its bundle"
    for url in urls:
        assert url.startswith("/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 0, url


def test_swagger_ui_may_run_its_inline_script_and_nothing_else(client):
    response = client.get("/docs")
    scripts = parse(response.text).inline_scripts
    assert len(scripts) == 1 and "SwaggerUIBundle" in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert csp(response)["script-src"] == f"script-src 'self' 'sha256-{digest}'"
    assert '"validatorUrl": null' in scripts[0]


def test_the_vendored_docs_bundles_are_the_pinned_files():
    readme = (STATIC / "vendor" / "README.md").read_text()
    pinned = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.MULTILINE)
    assert len(pinned) == 3
    for digest, name in pinned:
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest
    for folder in ("swagger-ui", "redoc"):
        assert (STATIC / "vendor" / folder / "LICENSE").is_file()


def test_the_openapi_document_offers_json_and_uploads_for_interpolate_and_score(client):
    document = client.get("/openapi.json").json()
    paths, schemas = document["paths"], document["components"]["schemas"]

    def schema(content: dict) -> dict:
        return schemas[content["schema"]["$ref"].rsplit("/", 1)[1]]

    for path in ("/v1/interpolate", "/v1/score"):
        content = paths[path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "multipart/form-data"}
        assert schema(content["application/json"])["examples"]
        assert schema(content["multipart/form-data"])["properties"]["file"]["type"] == "array"
    assert "multipart/form-data" in paths["/v1/reconstruct"]["post"]["requestBody"]["content"]
    assert "image/png" in paths["/v1/traverse"]["post"]["responses"]["200"]["content"]
    assert "image/png" in paths["/v1/model/report/{name}"]["get"]["responses"]["200"]["content"]
    assert "/" not in paths and "/docs" not in paths
