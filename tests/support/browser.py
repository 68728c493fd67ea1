"""Headless Chromium (Debian's ``chromium`` package, never a downloaded browser) driven by
Playwright, against the app served by a real uvicorn server on loopback: what the browser
tests use, and ``make screenshots`` (the README's pictures and the slider latency):

    python -m tests.support.browser --model-dir model --out docs/images
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app
from app.serving.model import Loader

# Chromium as it runs on these machines: no sandbox (root in a container), no GPU, and none of
# its own network traffic (the network is closed; each refused connection costs time).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: dict[str, Any] = {"viewport": {"width": 1440, "height": 900}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
# A hand-written 2, as strokes in the canvas's unit square.
TWO = [
    [
        (0.28, 0.32),
        (0.36, 0.2),
        (0.5, 0.15),
        (0.64, 0.2),
        (0.7, 0.33),
        (0.64, 0.47),
        (0.48, 0.62),
        (0.3, 0.8),
        (0.72, 0.8),
    ]
]
SEVEN = [[(0.26, 0.2), (0.74, 0.2), (0.44, 0.84)]]


def chromium() -> str | None:
    """The system Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class LiveServer:
    """The app on a real uvicorn server on 127.0.0.1 (a free port), in a thread."""

    def __init__(self, model_dir: Path, load: Loader | None = None, **settings: Any):
        settings.setdefault("model_poll_seconds", 0)
        self.app = create_app(Settings(model_dir=model_dir, **settings), load)
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not become ready in 120 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.socket.close()


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (a fresh profile each time)."""
    from playwright.sync_api import sync_playwright  # imported here: only tests need it

    executable = chromium()
    if executable is None:
        raise RuntimeError("Chromium is not installed: apt-get install chromium")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            yield instance
        finally:
            instance.close()


def block_the_network(context: Any) -> list[str]:
    """Abort every request that leaves 127.0.0.1; returns the list of those refused."""
    refused: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlparse(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:
            refused.append(url)
            request_route.abort()

    context.route("**/*", route)
    return refused


def watch_console(page: Any) -> list[str]:
    """Console errors and uncaught exceptions (CSP violations are console errors)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def open_explorer(page: Any, url: str) -> None:
    """Load the explorer and wait until the model, grid and sliders are there."""
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector("#decoded[data-decodes]", timeout=30_000)


def draw(page: Any, strokes: list[list[tuple[float, float]]], touch: bool = False) -> None:
    """Draw strokes (unit coordinates) on the canvas as a person would: with the mouse, or
    with a finger (touch events through the DevTools protocol)."""
    canvas = page.locator("#canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    if touch:
        session = page.context.new_cdp_session(page)
        for stroke in strokes:
            points = [at(*stroke[0])] + [
                at(x0 + (x1 - x0) * t / 6, y0 + (y1 - y0) * t / 6)
                for (x0, y0), (x1, y1) in zip(stroke, stroke[1:], strict=False)
                for t in range(1, 7)
            ]
            for index, (x, y) in enumerate(points):
                kind = "touchStart" if index == 0 else "touchMove"
                session.send(
                    "Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]}
                )
            session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        session.detach()
        return
    for stroke in strokes:
        page.mouse.move(*at(*stroke[0]))
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(*at(x, y), steps=6)
        page.mouse.up()


def drag_slider(page: Any, index: int, fraction: float) -> None:
    """Drag slider ``index`` from where it is to ``fraction`` of its track."""
    slider = page.locator("#slider-list input").nth(index)
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    value = float(slider.input_value())
    low, high = float(slider.get_attribute("min")), float(slider.get_attribute("max"))
    start = box["x"] + box["width"] * (value - low) / (high - low)
    y = box["y"] + box["height"] / 2
    page.mouse.move(start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * fraction, y, steps=8)
    page.mouse.up()


def decodes(page: Any) -> int:
    return int(page.locator("#decoded").get_attribute("data-decodes") or 0)


def server_decode_seconds(url: str) -> tuple[float, int]:
    """(total seconds, requests) the server spent answering /v1/decode (its /metrics)."""
    text = httpx.get(f"{url}/metrics").text
    total = re.search(r'vae_http_request_seconds_sum\{route="/v1/decode"\} (\S+)', text)
    count = re.search(r'vae_http_request_seconds_count\{route="/v1/decode"\} (\S+)', text)
    return (float(total.group(1)) if total else 0.0, int(float(count.group(1))) if count else 0)


def screenshots(url: str, out: Path, seed: int = 2024) -> dict[str, float]:
    """The explorer on a desktop (the whole page) and on a phone (three screens side by
    side), with a grid digit explored and a digit drawn; returns the sliders' decode latency
    seen by the browser and by the server."""
    from playwright.sync_api import expect

    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    with browser() as chrome:
        for name, device in (("explorer-desktop", DESKTOP), ("explorer-phone", PHONE)):
            context = chrome.new_context(**device)
            page = context.new_page()
            open_explorer(page, f"{url}/?seed={seed}&temperature=0.8")
            if name == "explorer-desktop":
                figures.update(slider_latency(page, url))
            page.locator("#grid button").nth(5).click()
            drag_slider(page, 1, 0.6)
            draw(page, TWO, touch=name == "explorer-phone")
            page.wait_for_selector("#code-bars .bar", timeout=30_000)
            page.locator("#draw-to-b").click()
            expect(page.locator("#end-b")).to_have_text("your drawing")
            page.mouse.move(0, 0)  # no hover highlight in the picture
            page.wait_for_timeout(800)
            if name == "explorer-desktop":
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            else:
                screens = []
                for anchor, offset in (("body", 0), ("#slider-list", -230), ("#draw", -10)):
                    page.evaluate(
                        f"window.scrollTo(0, document.querySelector('{anchor}')"
                        f".getBoundingClientRect().top + window.scrollY + {offset})"
                    )
                    page.wait_for_timeout(300)
                    screens.append(page.screenshot())
                side_by_side(screens, out / f"{name}.png")
            context.close()
    return figures


def side_by_side(screens: list[bytes], path: Path, gap: int = 48, scale: float = 0.5) -> None:
    """Phone screens next to each other on a white background, scaled (device pixels: 2)."""
    import io

    from PIL import Image

    pictures = [Image.open(io.BytesIO(s)).convert("RGB") for s in screens]
    width = sum(p.width for p in pictures) + gap * (len(pictures) + 1)
    height = max(p.height for p in pictures) + 2 * gap
    sheet = Image.new("RGB", (width, height), "white")
    x = gap
    for picture in pictures:
        sheet.paste(picture, (x, gap))
        x += picture.width + gap
    size = (round(width * scale), round(height * scale))
    sheet.resize(size, Image.Resampling.LANCZOS).save(path, optimize=True)


def slider_latency(page: Any, url: str, moves: int = 40) -> dict[str, float]:
    """Drag sliders back and forth; the browser's decode round trips and the server's time."""
    before_seconds, before_count = server_decode_seconds(url)
    start = decodes(page)
    for move in range(moves):
        drag_slider(page, move % 4, 0.25 + 0.5 * (move % 2))
    page.wait_for_timeout(500)
    recent = (page.locator("#decoded").get_attribute("data-times") or "").split()
    times = [float(t) for t in recent[-moves:]]
    after_seconds, after_count = server_decode_seconds(url)
    served = after_count - before_count
    return {
        "slider_moves": moves,
        "browser_decodes": decodes(page) - start,
        "browser_median_ms": statistics.median(times) if times else float("nan"),
        "browser_p90_ms": sorted(times)[int(0.9 * len(times))] if times else float("nan"),
        "server_mean_ms": 1000 * (after_seconds - before_seconds) / max(served, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    with LiveServer(args.model_dir) as server:
        figures = screenshots(server.url, args.out, args.seed)
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")
    print(f"screenshots in {args.out}/explorer-desktop.png and explorer-phone.png")


if __name__ == "__main__":
    main()
