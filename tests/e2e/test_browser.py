"""Slow tier: the explorer and the API docs in a real browser (Debian's headless Chromium,
driven by Playwright) against a real uvicorn server on loopback, with every request that
would leave 127.0.0.1 blocked: the pages must work offline.

``make test`` installs Chromium (``make browser``); where it cannot be installed these tests
are skipped, saying so.
"""

from __future__ import annotations

import base64
import re

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from app.edge.api_keys import key_line
from app.media.pictures import to_png
from tests.support.browser import (
    DESKTOP,
    PHONE,
    SEVEN,
    TWO,
    LiveServer,
    block_the_network,
    browser,
    chromium,
    decodes,
    drag_slider,
    draw,
    open_explorer,
    watch_console,
)
from tests.support.fakes import FakeLoader, make_versions

# Which model the browser sees: "fake" (tests/support/fakes.py) or "trained" (conftest's model_dir).
SERVED_MODEL = "fake"

PIXELS = """img => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data)
    .filter((_, i) => i % 4 === 0);
}"""


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    if chromium() is None:
        pytest.skip(
            "Chromium is not installed and could not be (make browser: "
            "apt-get install chromium); the browser tests need it"
        )
    if SERVED_MODEL == "trained":
        model_dir, loader = request.getfixturevalue("model_dir"), None
    else:
        model_dir, loader = make_versions(tmp_path_factory.mktemp("models"), 1), FakeLoader()
    with LiveServer(model_dir, loader) as live:
        yield live


@pytest.fixture(scope="module")
def chrome(server):
    with browser() as instance:
        yield instance


def new_page(chrome, device=DESKTOP):
    """A fresh browser context that cannot reach anything but 127.0.0.1, and a page in it
    whose console errors (CSP violations among them) are collected."""
    context = chrome.new_context(**device)
    refused = block_the_network(context)
    page = context.new_page()
    return context, page, watch_console(page), refused


@pytest.fixture
def page(chrome):
    context, page, problems, refused = new_page(chrome)
    yield page
    context.close()
    assert problems == [], "the page logged errors"
    assert refused == [], "the page tried to leave 127.0.0.1"


def image_pixels(page, selector: str) -> list[int]:
    return page.locator(selector).evaluate(PIXELS)


def test_the_explorer_shows_a_grid_sliders_and_the_model(page, server):
    open_explorer(page, server.url)
    assert page.locator("#grid img").count() == 32
    assert page.locator("#slider-list input").count() == 20
    assert page.locator("#slider-list .name").first.inner_text() == "PC1"
    assert re.match(r"version \d+ · (CPU|GPU) · preset", page.locator("#model-line").inner_text())
    assert "latent dimensions" in page.locator("#facts").inner_text()
    assert page.locator("#strip img").count() == 10  # grid digits 1 → 2, on load
    expect(page.locator("#walk img")).to_have_count(9)  # a walk along principal axis 1


def test_moving_a_slider_changes_the_decoded_digit(page, server):
    open_explorer(page, server.url)
    before, count = image_pixels(page, "#decoded"), decodes(page)
    drag_slider(page, 0, 0.95)
    expect(page.locator("#decoded")).not_to_have_attribute("data-decodes", str(count))
    expect(page.locator("#decoded")).not_to_have_attribute("data-busy", "true")  # caught up
    assert float(page.locator("#slider-list input").first.input_value()) > 2.5
    after = image_pixels(page, "#decoded")
    assert len(after) == 28 * 28 and after != before
    assert "decoded in" in page.locator("#decode-time").inner_text()

    page.locator("#mode-raw").click()
    assert page.locator("#slider-list .name").first.inner_text() == "z1"
    count = decodes(page)
    drag_slider(page, 3, 0.1)
    expect(page.locator("#decoded")).not_to_have_attribute("data-decodes", str(count))
    expect(page.locator("#decoded")).not_to_have_attribute("data-busy", "true")
    assert image_pixels(page, "#decoded") != after


def test_drawing_a_stroke_shows_mu_sigma_and_a_score(page, server):
    open_explorer(page, server.url)
    draw(page, SEVEN)
    page.wait_for_selector("#code-bars .bar", timeout=30_000)
    bars = page.locator("#code-bars .bar .numbers").all_inner_texts()
    assert len(bars) == 20
    assert all(re.fullmatch(r"\s?-?\d+\.\d\d ± \d+\.\d\d", text) for text in bars), bars
    score = page.locator("#score-value").inner_text()
    assert re.fullmatch(r"log p\(x\) ≈ -?\d+\.\d nats", score), score
    assert re.search(r"than \d+% of the test digits", page.locator("#score-text").inner_text())
    assert page.locator("#preprocessed").get_attribute("src").startswith("data:image/png")
    assert page.locator("#reconstruction").get_attribute("src").startswith("data:image/png")

    # What the page shows is what the API answers for the same drawing.
    drawn = page.locator("#canvas").evaluate("c => c.toDataURL('image/png')")
    upload = base64.b64decode(drawn.split(",", 1)[1])
    answer = httpx.post(
        f"{server.url}/v1/reconstruct", files={"file": ("drawing.png", upload)}
    ).json()
    assert score == f"log p(x) ≈ {answer['log_px'][0]:.1f} nats"
    assert bars[0].strip().startswith(f"{answer['mu'][0][0]:.2f}")

    page.locator("#clear").click()
    assert page.locator("#code-bars .bar").count() == 0
    assert page.locator("#score-value").inner_text() == "–"


def test_an_interpolation_runs_between_a_grid_digit_and_a_drawing(page, server):
    open_explorer(page, server.url)
    page.locator("#grid button").nth(3).click()
    page.locator("#slider-to-a").click()
    draw(page, TWO)
    page.wait_for_selector("#code-bars .bar", timeout=30_000)
    page.locator("#draw-to-b").click()
    expect(page.locator("#strip-note")).to_have_text(re.compile("^linear"))
    assert page.locator("#end-a").inner_text() == "the sliders' digit"
    assert page.locator("#end-b").inner_text() == "your drawing"
    page.locator("#steps").focus()
    for _ in range(4):
        page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#strip[data-steps='6']")
    strip = page.locator("#strip img")
    assert strip.count() == 6
    assert image_pixels(page, "#strip img >> nth=0") != image_pixels(page, "#strip img >> nth=5")
    page.locator("#method").select_option("spherical")
    expect(page.locator("#strip-note")).to_have_text(re.compile("^spherical"))


def test_a_shared_seed_url_reproduces_the_grid(chrome, server):
    shared = f"{server.url}/?seed=77&temperature=0.7&digit=4"
    grids = []
    for _ in range(2):  # two fresh browser contexts: nothing shared but the URL
        context, page, problems, _ = new_page(chrome)
        open_explorer(page, shared)
        grids.append([img.get_attribute("src") for img in page.locator("#grid img").all()])
        assert page.locator("#seed").input_value() == "77"
        assert page.locator("#digit-buttons [aria-pressed=true]").inner_text() == "4"
        assert "seed=77" in page.url and "digit=4" in page.url
        page.locator("#new-seed").click()
        expect(page.locator("#grid")).not_to_have_attribute("data-seed", "77")
        assert f"seed={page.locator('#grid').get_attribute('data-seed')}&" in page.url
        context.close()
        assert problems == []
    assert len(grids[0]) == 32 and grids[0] == grids[1]


def test_the_explorer_fits_a_phone(chrome, server):
    context, page, problems, _ = new_page(chrome, PHONE)
    open_explorer(page, server.url)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    draw(page, SEVEN, touch=True)
    page.wait_for_selector("#code-bars .bar", timeout=30_000)
    box = page.locator("#canvas").bounding_box()
    assert box["width"] >= 300  # a finger-sized drawing area
    context.close()
    assert problems == []


def test_the_docs_render_with_the_network_blocked(chrome, server):
    context, page, problems, refused = new_page(chrome)
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    text = page.locator(".swagger-ui").inner_text()
    for path in ("/v1/reconstruct", "/v1/interpolate", "/v1/traverse", "/v1/score"):
        assert path in text

    # Try an endpoint that answers a PNG: Swagger UI shows the picture.
    operation = page.locator("#operations-explore-traverse_v1_traverse_post")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".responses-wrapper select").first.select_option("image/png")
    operation.locator(".execute").click()
    picture = operation.locator(".response .microlight img, .response img").first
    picture.wait_for(timeout=30_000)
    assert picture.get_attribute("src").startswith("blob:")

    page.goto(f"{server.url}/redoc")
    heading = page.get_by_role("heading", name="Decode the path between two digits")
    expect(heading).to_be_visible(timeout=30_000)
    context.close()
    # ReDoc always shows Redocly's logo from its CDN in the menu; the policy blocks it and
    # ReDoc drops the picture (its onError). Nothing else may be refused or fail.
    problems = [p for p in problems if "cdn.redoc.ly/redoc/logo-mini.svg" not in p]
    assert refused == [] and problems == []


@pytest.fixture(scope="module")
def keyed_server(server, tmp_path_factory):
    """The same app started with API keys."""
    folder = tmp_path_factory.mktemp("keys")
    keys = folder / "api-keys.txt"
    keys.write_text(key_line("browser", "a-key-for-the-browser") + "\n")
    models = make_versions(folder, 1)
    report = models / "vae" / "1" / "report"
    report.mkdir()
    (report / "samples.png").write_bytes(to_png(np.eye(28)))
    with LiveServer(models, FakeLoader(), api_keys_file=keys) as live:
        yield live


def test_the_explorer_asks_for_a_key_when_the_service_needs_one(chrome, keyed_server):
    context, page, problems, refused = new_page(chrome)
    page.goto(keyed_server.url)
    form = page.locator("#key-form")
    expect(form).to_be_visible(timeout=30_000)
    page.locator("#key-input").fill("a-wrong-key")
    page.locator("#key-form button").click()
    expect(page.locator("#key-message")).to_have_text(re.compile("refused"), timeout=30_000)
    page.locator("#key-input").fill("a-key-for-the-browser")
    page.locator("#key-form button").click()
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.locator("#grid img").count() == 32
    expect(form).to_be_hidden()
    expect(page.locator("#pictures img").first).to_be_visible(timeout=30_000)  # fetched with it
    context.close()
    # The two refusals before the key are the browser's own log lines for the 401s.
    assert all("401" in problem for problem in problems), problems
    assert refused == []


def test_the_docs_authorize_button_sends_the_key(chrome, keyed_server):
    context, page, problems, refused = new_page(chrome)
    page.goto(f"{keyed_server.url}/docs")
    page.locator(".swagger-ui .btn.authorize").click(timeout=30_000)
    page.locator(".auth-container input").fill("a-key-for-the-browser")
    page.locator(".auth-container .btn.authorize").click()
    page.locator(".btn-done").click()
    operation = page.locator("#operations-model-model_info_v1_model_get")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text("200", timeout=30_000)
    context.close()
    assert refused == [] and problems == []
