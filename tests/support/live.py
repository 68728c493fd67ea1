"""A real server process for the reliability suite, and what the tests read from it.

``LiveServer`` starts ``python -m tests.support.fake_server`` (uvicorn configured as ``vae-serve``,
serving the NumPy stand-in model) on a free loopback port with the given ``VAE_*`` settings,
waits until it is ready, and reads its resident memory from ``/proc`` and its counters from
``/metrics``. Its output goes to a file (a pipe nobody reads would stall it).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"VAE_LOG_LEVEL": "warning", "VAE_MODEL_POLL_SECONDS": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """One server process on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        leak_bytes: int = 0,
        request_log: Path | None = None,
        gate: Path | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 60,
        **settings: object,
    ):
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="live-server-", suffix=".log")[1])
        # Only the settings a test gives: `make test` exports VAE_MODEL_DIR (the real model's
        # folder, empty on a fresh clone), which must not reach the stand-in server.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("VAE_")}
        env = {**inherited, **QUIET, "PYTHONPATH": str(ROOT), **(env or {})}
        env.update({f"VAE_{name.upper()}": str(value) for name, value in settings.items()})
        args = command or [sys.executable, "-m", "tests.support.fake_server", "--delay", str(delay)]
        args = [*args, "--port", str(self.port)]
        if leak_bytes:
            args += ["--leak-bytes", str(leak_bytes)]
        if request_log is not None:
            args += ["--request-log", str(request_log)]
        if gate is not None:
            args += ["--gate", str(gate)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float | None = None) -> LiveServer:
        timeout = timeout or self.ready_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready within {timeout} s: {self.log()}")

    def __enter__(self) -> LiveServer:
        try:
            return self.wait_ready()
        except BaseException:
            self.kill()
            raise

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a graceful shutdown), then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Poll until ``condition()`` holds (an event the server reports, not a duration)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}\n{self.log()[-2000:]}")
            time.sleep(0.01)

    # --- what the tests measure -----------------------------------------------------------------
    def _status(self, field: str) -> float:
        text = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
        assert match, f"no {field} in /proc/{self.pid}/status"
        return int(match.group(1)) / 1024

    def rss_mb(self) -> float:
        """Resident memory now, in MiB."""
        return self._status("VmRSS")

    def peak_rss_mb(self) -> float:
        """The most resident memory since the start (or ``reset_peak``), in MiB."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        """Start ``peak_rss_mb`` again from the current resident memory (Linux clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {'name{labels}': value}."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric over the series matching ``labels``."""
        total = 0.0
        for series, value in self.metrics().items():
            base, _, rest = series.partition("{")
            if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += value
        return total


# --- raw HTTP on a socket, for clients that misbehave on purpose ----------------------------------
def connect(url: str, timeout: float = 10) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    return sock


class RawResponse:
    """A response read off a socket: status, headers, body, and whether the server then closed
    the connection (EOF) rather than keeping it open."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, closed: bool):
        self.status = status
        self.headers = headers
        self.body = body
        self.closed = closed

    def __repr__(self) -> str:
        return f"RawResponse({self.status}, {self.headers}, {self.body[:200]!r}, {self.closed})"


def read_response(sock: socket.socket, timeout: float = 10, eof_within: float = 1.0) -> RawResponse:
    """One response (Content-Length framed), then up to ``eof_within`` s to see the close."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of the body")
        body += chunk
    sock.settimeout(eof_within)
    try:
        closed = sock.recv(1) == b""
    except TimeoutError:
        closed = False
    return RawResponse(status, headers, body[:length], closed)
