"""Serving benchmark, like for like: a bare FastAPI endpoint, this service, LitServe and the same
endpoints written the naive way, each with the same worker processes and TensorFlow threads,
each restarted for several rounds.

Targets (every one on loopback, the newest model, ``--workers`` processes, ``--threads``
TensorFlow threads per process):

- ``bare``: `benchmarks/bare_app.py`, FastAPI parsing the same JSON and answering a constant
  (the ceiling of FastAPI + uvicorn);
- ``service``: this service, `vae-serve` (`python -m app.cli`);
- ``litserve``: the digit endpoints written for LitServe (`benchmarks/litserve_app.py`, batching
  on, ``workers_per_device`` inference processes and as many HTTP ones; LitServe is
  pip-installed into this interpreter when missing, it is not a dependency of the project);
- ``naive``: the digit endpoints the tutorial way (`benchmarks/naive_app.py`: synchronous
  endpoints, one SavedModel call per request, a Pillow PNG per image).

Each round starts every target in turn, alone on the machine (the order alternates from round
to round), warms it up, checks that its answers are the first model server's (the same JSON,
the same PNG bytes), loads it with wrk (Debian package `wrk`) for every row and number of
clients, and stops it. The table gives, per cell, the median requests/s over the rounds, the
spread (the fastest round over the slowest), the median p50 and p99, and the ratios of the
service to the naive app, to the bare endpoint and to LitServe. Rows:

- generate (count 1): JSON with one base64 PNG;
- decode (64 codes): JSON with 64 base64 PNGs;
- decode PNG / npy (64 codes): one 8×8 grid, or uint8 pixels (``application/x-npy``);
- TF Serving predict, v2 decode JSON / binary (64 codes): ``/v1/models/vae:predict`` and the
  Open Inference Protocol's ``/v2/models/vae/infer`` with JSON or binary tensors (service only).

Then, with nothing else running, the decoder signature's own images/s (direct TensorFlow calls
on 64 codes: the ceiling a binary answer can approach), and the service's resident memory
before and after N more generate requests.

    python benchmarks/serve_bench.py [--restarts 4] [--duration 8] [--workers 2] [--threads 1]
        [--targets bare,service,litserve,naive] [--rows generate,decode] [--clients 1,16,64]

    # API keys and every per-client limit on, beside the defaults
    python benchmarks/serve_bench.py --targets \
        "service,secure=service?keys=1&VAE_CLIENT_RATE=1000000&VAE_CLIENT_BURST=1000000"

The machine this runs on matters: compare figures from one run (the ratios), not across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.edge.api_keys import key_line, new_key

ROOT = Path(__file__).resolve().parents[1]
LITSERVE_REQUIREMENT = "litserve==0.2.19"  # the version measured; an optional benchmark extra
TARGETS = ("bare", "service", "litserve", "naive")
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local accept = os.getenv("BENCH_ACCEPT")
if accept and accept ~= "" then wrk.headers["Accept"] = accept end
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
for name, value in string.gmatch(os.getenv("BENCH_HEADERS") or "", "([^:\\n]+): ([^\\n]*)") do
  wrk.headers[name] = value
end
local file = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
wrk.body = file:read("*a")
file:close()
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency.max))
end
"""


@dataclass
class Row:
    """One kind of request: where it goes, its body, what it accepts, at which loads."""

    name: str
    path: str
    body: str | bytes
    accept: str = ""
    clients: tuple[int, ...] = (1, 16, 64)
    headers: dict[str, str] = field(default_factory=dict)
    service_only: bool = False  # a route only the service has


@dataclass
class Server:
    name: str
    kind: str  # bare, service, litserve or naive
    command: list[str]
    env: dict[str, str]
    ready_path: str
    port: int = 0
    cwd: Path = ROOT
    auth: str = ""  # an Authorization header, for a server started with API keys
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def start(self) -> None:
        """Start in its own process group on a free port; wait until it answers."""
        self.port = free_port()
        self.process = subprocess.Popen(
            [*self.command, "--port", str(self.port)],
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None:
                sys.exit(f"{self.name} exited with {self.process.returncode}: {self.command}")
            time.sleep(0.3)
        self.stop()
        sys.exit(f"{self.name} did not become ready: {self.command}")

    def signal(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        """Stop every process it started (LitServe's workers included)."""
        if self.process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
        time.sleep(0.5)
        self.signal(signal.SIGKILL)
        self.process = None

    def rss_mb(self) -> float:
        """Resident memory of every process in its group."""
        total = 0
        for status in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = status.read_text().rsplit(")", 1)[1].split()
                if self.process is not None and int(fields[2]) == self.process.pid:  # pgrp
                    text = (status.parent / "status").read_text()
                    total += int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))
        return total / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_litserve() -> None:
    """Install LitServe into this interpreter if it is missing (benchmark-only extra)."""
    if importlib.util.find_spec("litserve") is None:
        print(f"installing {LITSERVE_REQUIREMENT} (benchmark only)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", LITSERVE_REQUIREMENT], check=True
        )


def build_server(target: str, args: argparse.Namespace, model_dir: Path) -> Server:
    """A server for one target (see ``--targets``), with the run's workers and threads."""
    tf_env = {
        "VAE_MODEL_DIR": str(model_dir),
        "VAE_LOG_LEVEL": "warning",
        "VAE_INTRA_OP_THREADS": str(args.threads),
        "VAE_INTER_OP_THREADS": str(args.threads),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    python = sys.executable
    label, _, spec = target.partition("=") if "=" in target.split("?")[0] else ("", "", target)
    target_spec, _, query = spec.partition("?")
    extra_env = dict(urllib.parse.parse_qsl(query))
    with_keys = extra_env.pop("keys", "") not in ("", "0")
    name, _, folder = target_spec.partition(":")
    base, _, workers = name.partition("@")
    workers = workers or str(args.workers)

    def uvicorn(app: str) -> list[str]:
        return [python, "-m", "uvicorn", app, "--workers", workers, "--log-level", "warning"]

    if base == "bare":
        server = Server(target, "bare", uvicorn("benchmarks.bare_app:app"), {}, "/readyz")
    elif base == "naive":
        server = Server(target, "naive", uvicorn("benchmarks.naive_app:app"), tf_env, "/readyz")
    elif base == "litserve":
        command = [python, "-m", "benchmarks.litserve_app", "--workers-per-device", workers]
        command += args.litserve_args.split()
        server = Server(target, "litserve", command, tf_env, "/health")
    elif base in ("service", "proto"):
        command = [python, "-m", "app.cli", "--workers", workers]
        server = Server(target, "service", command, tf_env, "/readyz")
        if base == "proto":  # `python -m` puts the working folder first on sys.path
            server.cwd = Path(folder).resolve()
            if not (server.cwd / "app").is_dir():
                sys.exit(f"{target}: no app/ package in {server.cwd}")
    else:
        sys.exit(f"unknown target {target!r}")
    server.env.update(extra_env)
    if with_keys:  # API keys on: a keys file of one key, sent with every request
        key, keys_file = new_key(), Path(tempfile.mkdtemp(prefix="bench-keys-")) / "keys"
        keys_file.write_text(key_line("bench", key) + "\n")
        server.env["VAE_API_KEYS_FILE"] = str(keys_file)
        server.auth = f"Bearer {key}"
    server.name = label or target
    return server


def wrk(
    url: str, row: Row, connections: int, seconds: int, script: Path, auth: str = ""
) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, errors (non-2xx included)."""
    body = script.with_suffix(".body")  # a file: a binary body cannot pass in the environment
    body.write_bytes(row.body.encode() if isinstance(row.body, str) else row.body)
    headers = "\n".join(f"{name}: {value}" for name, value in row.headers.items())
    result = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s"]
        + ["--timeout", "10s", "-s", str(script), url + row.path],
        env={
            **os.environ,
            "BENCH_BODY_FILE": str(body),
            "BENCH_ACCEPT": row.accept,
            "BENCH_HEADERS": headers,
            "BENCH_AUTH": auth,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", result.stdout)
    if not match:
        sys.exit(f"could not read wrk's output:\n{result.stdout}\n{result.stderr}")
    requests, micros, p50, p99, errors, _ = (int(g) for g in match.groups())
    return {
        "rps": requests / (micros / 1e6),
        "p50": p50 / 1000,
        "p99": p99 / 1000,
        "errors": errors,
        "requests": requests,
    }


def headers(server: Server, accept: str = "") -> dict[str, str]:
    """Accept, and the server's API key when it needs one."""
    return {
        **({"Accept": accept} if accept else {}),
        **({"Authorization": server.auth} if server.auth else {}),
    }


def answers(server: Server, latent_dim: int) -> list[Any]:
    """What a model server answers to seeded requests: JSON, or the bytes of a PNG."""
    probes = [
        ("/v1/generate", "", {"count": 3, "seed": 7}),
        ("/v1/generate", "", {"count": 2, "seed": 11, "temperature": 0.5}),
        ("/v1/generate?nrow=2&scale=3", "image/png", {"count": 5, "seed": 7}),
        ("/v1/generate", "image/png", {"count": 1, "seed": 3}),
        ("/v1/decode", "", {"latents": [[0.1 * i] * latent_dim for i in range(-3, 4)]}),
        ("/v1/decode", "image/png", {"latents": [[0.2] * latent_dim] * 64}),
    ]
    found = []
    for path, accept, body in probes:
        response = httpx.post(
            server.url + path, json=body, headers=headers(server, accept), timeout=30
        )
        found.append((response.status_code, response.content if accept else response.json()))
    return found


def all_rows(latent_dim: int) -> dict[str, Row]:
    codes = [[0.1] * latent_dim] * 64
    decode_body = json.dumps({"latents": codes})
    tensor = {"name": "z", "shape": [64, latent_dim], "datatype": "FP32"}
    json_body = json.dumps({"inputs": [{**tensor, "data": [v for row in codes for v in row]}]})
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": 64 * latent_dim * 4}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    binary = head + b"".join(struct.pack("<f", v) for row in codes for v in row)
    return {
        "generate": Row("generate (count 1)", "/v1/generate", json.dumps({"count": 1})),
        "decode": Row("decode (64 codes)", "/v1/decode", decode_body, clients=(16,)),
        "decode-png": Row("decode PNG (64 codes)", "/v1/decode", decode_body, "image/png", (16,)),
        "decode-npy": Row(
            "decode npy (64 codes)", "/v1/decode", decode_body, "application/x-npy", (16,)
        ),
        "predict-json": Row(
            "TF Serving predict (64 codes)",
            "/v1/models/vae:predict",
            json.dumps({"instances": codes}),
            clients=(16,),
            service_only=True,
        ),
        "decode-v2-json": Row(
            "v2 decode JSON (64 codes)",
            "/v2/models/vae/infer",
            json_body,
            clients=(16,),
            service_only=True,
        ),
        "decode-v2-binary": Row(
            "v2 decode binary (64 codes)",
            "/v2/models/vae/infer",
            binary,
            clients=(16,),
            headers={
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(head)),
            },
            service_only=True,
        ),
    }


def signature_images_per_second(model_dir: Path, threads: int, seconds: float) -> dict:
    """Direct calls of the ``decode`` signature on 64 codes, in a fresh process."""
    code = f"""
import json, os, time, numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads({threads})
tf.config.threading.set_inter_op_parallelism_threads({threads})
base = {str(model_dir / "vae")!r}
version = max(int(p) for p in os.listdir(base) if p.isdigit())
decode = tf.saved_model.load(f"{{base}}/{{version}}").signatures["decode"]
z = tf.constant(np.random.default_rng(0).normal(size=(64, 20)).astype(np.float32))
result = {{}}
for name, step in [("float32", lambda: decode(z=z)["images"].numpy()),
                   ("uint8", lambda: np.round(np.clip(decode(z=z)["images"].numpy(), 0, 1) * 255)
                                         .astype(np.uint8))]:
    for _ in range(50):
        step()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < {seconds}:
        step()
        calls += 1
    result[name] = 64 * calls / (time.perf_counter() - start)
print(json.dumps(result))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="model")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument(
        "--restarts",
        type=int,
        default=4,
        help="rounds: every target started, measured and stopped once a round",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma-separated: bare, service, litserve, naive, proto:DIR (the service run "
        "from another checkout, DIR/app); NAME@N for N workers instead of --workers; any of "
        "them with ?KEY=VALUE&... for its environment (keys=1: API keys on, the key sent with "
        "every request), and LABEL= before it for a short name, e.g. "
        "'w1=service@1?VAE_INTRA_OP_THREADS=2'",
    )
    parser.add_argument(
        "--rows",
        default="generate,decode",
        help="comma-separated subset of generate, decode, decode-png, decode-npy, "
        "predict-json, decode-v2-json, decode-v2-binary",
    )
    parser.add_argument(
        "--clients", default="", help="override the concurrency of every row, e.g. 16 or 1,16,64"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes of every target (the service's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="TensorFlow intra- and inter-op threads per process (the service's)",
    )
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=0,
        help="generate requests between two readings of the service's memory (0: skip)",
    )
    parser.add_argument(
        "--no-signature", action="store_true", help="skip the decoder signature's own images/s"
    )
    parser.add_argument(
        "--litserve-args", default="", help="extra flags for benchmarks/litserve_app.py"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    return args


def measure(
    args: argparse.Namespace, model_dir: Path, script: Path
) -> tuple[dict[tuple[str, int], dict[str, list[dict]]], list[str]]:
    """Every round: every target started alone, checked, measured on every row, stopped."""
    servers = {s.name: s for s in (build_server(t, args, model_dir) for t in args.targets)}
    cells: dict[tuple[str, int], dict[str, list[dict]]] = {}
    reference: list[Any] | None = None
    latent_dim = 20
    for round_ in range(args.restarts):
        order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
        for name in order:
            server = servers[name]
            server.start()
            try:
                if round_ == 0 and server.kind != "bare":
                    if server.is_service:
                        info = httpx.get(server.url + "/v1/model", headers=headers(server))
                        latent_dim = info.json()["latent_dim"]
                    found = answers(server, latent_dim)
                    reference = reference or found
                    same = "identical" if found == reference else "DIFFERENT: not like for like"
                    print(f"answers of {name}: {same}", flush=True)
                rows = [all_rows(latent_dim)[r] for r in args.rows.split(",") if r]
                first = rows[0]
                wrk(server.url, first, 16, 2, script, server.auth)  # warm-up, not counted
                for row in rows:
                    if row.service_only and not server.is_service:
                        continue
                    clients = (
                        tuple(int(c) for c in args.clients.split(","))
                        if args.clients
                        else row.clients
                    )
                    for connections in clients:
                        figures = wrk(
                            server.url, row, connections, args.duration, script, server.auth
                        )
                        cells.setdefault((row.name, connections), {}).setdefault(name, []).append(
                            figures
                        )
                        print(
                            f"round {round_ + 1} {name:10} {row.name:30} c={connections:<3}"
                            f" {figures['rps']:8.0f} req/s  p50 {figures['p50']:6.1f}"
                            f"  p99 {figures['p99']:6.1f} ms"
                            + (f"  ERRORS {figures['errors']}" if figures["errors"] else ""),
                            flush=True,
                        )
            finally:
                server.stop()
    return cells, list(servers)


def summary(runs: list[dict]) -> dict[str, float]:
    """Median of every figure over the rounds, and the spread of the rate."""
    rates = [r["rps"] for r in runs]
    return {
        "rps": statistics.median(rates),
        "spread": max(rates) / min(rates) if min(rates) > 0 else float("inf"),
        "p50": statistics.median(r["p50"] for r in runs),
        "p99": statistics.median(r["p99"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "rounds": len(runs),
    }


def print_table(table: dict[tuple[str, int], dict[str, dict]], targets: list[str]) -> None:
    """Medians and spreads side by side, and the service's ratios."""
    head = "| row | clients |" + "".join(f" {t} req/s (spread) | p50 / p99 ms |" for t in targets)
    ratios = [
        other
        for other in ("naive", "bare", "litserve")
        if other in targets and "service" in targets
    ]
    head += "".join(f" service / {other} |" for other in ratios)
    print("\n" + head)
    print("|---|---:|" + "---:|---:|" * len(targets) + "---:|" * len(ratios))
    for (row, clients), cell in table.items():
        line = f"| {row} | {clients} |"
        for target in targets:
            if target not in cell:
                line += " | |"
                continue
            s = cell[target]
            errors = " (errors)" if s["errors"] else ""
            line += (
                f" {s['rps']:,.0f}{errors} ({s['spread']:.2f}×) | {s['p50']:.1f} / {s['p99']:.1f} |"
            )
        for other in ratios:
            if "service" in cell and other in cell:
                line += f" {cell['service']['rps'] / cell[other]['rps']:.2f} |"
            else:
                line += " |"
        print(line)


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    if any(t.split("?")[0].split("=")[-1].startswith("litserve") for t in args.targets):
        ensure_litserve()
    model_dir = Path(args.model_dir).resolve()
    print(
        f"{args.restarts} rounds, every target with {args.workers} worker processes and "
        f"{args.threads} TensorFlow thread(s) each, {args.duration} s a cell",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        cells, targets = measure(args, model_dir, script)
        table = {key: {t: summary(runs) for t, runs in cell.items()} for key, cell in cells.items()}
        results: dict[str, Any] = {
            "settings": {k: str(v) for k, v in vars(args).items()},
            "rows": [
                {"row": row, "clients": clients, **cell} for (row, clients), cell in table.items()
            ],
        }
        print_table(table, targets)
        if not args.no_signature:
            sig = signature_images_per_second(model_dir, args.threads, max(3, args.duration))
            results["signature"] = sig
            print(
                f"\nThe decode signature alone, 64 codes, in-process: {sig['float32']:,.0f} "
                f"images/s ({sig['uint8']:,.0f} with the uint8 conversion)"
            )
        if args.memory_requests:
            results["memory"] = memory(args, model_dir, script)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def memory(args: argparse.Namespace, model_dir: Path, script: Path) -> dict[str, float]:
    """The service's resident memory before and after ``--memory-requests`` generate requests."""
    server = build_server("service", args, model_dir)
    server.start()
    try:
        generate = all_rows(20)["generate"]
        wrk(server.url, generate, 16, 3, script)
        before, sent = server.rss_mb(), 0
        while sent < args.memory_requests:  # wrk runs for a time, not a count
            sent += wrk(server.url, generate, 16, 10, script)["requests"]
        after = server.rss_mb()
    finally:
        server.stop()
    print(
        f"service memory: {before:.0f} MB before, {after:.0f} MB after {sent} more generate "
        f"requests ({after - before:+.0f} MB)"
    )
    return {"before": before, "after": after, "requests": sent}


if __name__ == "__main__":
    main()
