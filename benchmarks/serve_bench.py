"""Serving benchmark: a bare FastAPI endpoint, this service and LitServe, side by side in one run.

Starts, on loopback and the newest model: `benchmarks/bare_app.py` (FastAPI parsing the same
JSON and answering a constant), the service (`python -m app.cli`) and the same two endpoints
written for LitServe (`benchmarks/litserve_app.py`; LitServe is pip-installed into this
interpreter when missing, it is not a dependency of the project). It checks that the service and
LitServe give the same answers, then loads each with wrk (Debian package `wrk`) in turn, the
other servers paused (SIGSTOP; not those with several uvicorn workers) so that idle processes
take no CPU from the one measured, and prints requests/s, p50/p99 latency and the ratio to the
bare endpoint for every row:

- generate (count 1): JSON with one base64 PNG;
- decode (64 codes): JSON with 64 base64 PNGs;
- decode PNG (64 codes): `Accept: image/png`, one 8×8 grid;
- decode npy (64 codes): `Accept: application/x-npy`, uint8 pixels;
- TF Serving predict (64 codes): `/v1/models/vae:predict`, JSON floats;
- v2 decode JSON / binary (64 codes): the Open Inference Protocol's `/v2/models/vae/infer`, with
  JSON tensors, or with Triton's binary tensor data (float32 bytes in and out), as tritonclient
  sends them by default;

then the decoder signature's own images/s (direct TensorFlow calls of `decode` on 64 codes in a
separate process, nothing else running: the ceiling a binary answer can approach), and each
server's resident memory (every process it started) before and after N more generate requests.

    python benchmarks/serve_bench.py [--duration 10] [--rounds 1] [--targets bare,service,litserve]
        [--rows generate,decode,decode-png] [--clients 1,16,64] [--memory-requests 10000]

    # the Open Inference Protocol's rows beside the binary /v1/decode answer and TF Serving's
    python benchmarks/serve_bench.py --targets service --rows decode-npy,decode-v2-binary,\
        predict-json,decode-v2-json --no-signature --memory-requests 0

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.edge.api_keys import key_line, new_key

ROOT = Path(__file__).resolve().parents[1]
LITSERVE_REQUIREMENT = "litserve==0.2.19"  # the version measured; an optional benchmark extra
TARGETS = ("bare", "service", "litserve")
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


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    port: int = 0
    cwd: Path = ROOT
    # uvicorn's process manager restarts a worker that misses its pings: after a SIGSTOP of
    # the group it would reload the model mid-run, so servers with several workers run on.
    pausable: bool = True
    auth: str = ""  # an Authorization header, for a server started with API keys
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start in its own process group and wait until it answers its readiness path."""
        self.process = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None:
                sys.exit(f"{self.name} exited with {self.process.returncode}: {self.command}")
            time.sleep(0.3)
        self.stop()
        sys.exit(f"{self.name} did not become ready: {self.command}")

    def pause(self, paused: bool) -> None:
        if self.pausable:
            self.signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def signal(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
        time.sleep(0.5)
        self.signal(signal.SIGKILL)  # LitServe's worker processes, if any outlived it

    def rss_mb(self) -> float:
        """Resident memory of every process in its group (LitServe runs several)."""
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
    """A server for one target name (see ``--targets``)."""
    tf_env = {
        "VAE_MODEL_DIR": str(model_dir),
        "VAE_LOG_LEVEL": "warning",
        "VAE_INTRA_OP_THREADS": str(args.threads),
        "VAE_INTER_OP_THREADS": str(args.inter_threads),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    python = sys.executable
    label, _, spec = target.partition("=") if "=" in target.split("?")[0] else ("", "", target)
    target_spec, _, query = spec.partition("?")
    extra_env = dict(urllib.parse.parse_qsl(query))
    with_keys = extra_env.pop("keys", "") not in ("", "0")
    name, _, folder = target_spec.partition(":")
    base, _, workers = name.partition("@")
    if base == "bare":
        server = Server(
            target,
            [python, "-m", "uvicorn", "benchmarks.bare_app:app", "--log-level", "warning"],
            {},
            "/readyz",
        )
    elif base == "litserve":
        server = Server(
            target,
            [python, "-m", "benchmarks.litserve_app", *args.litserve_args.split()],
            tf_env,
            "/health",
        )
    elif base in ("service", "proto"):
        count = workers or str(args.service_workers)
        server = Server(
            target,
            [python, "-m", "app.cli", "--workers", count],
            tf_env,
            "/readyz",
            pausable=count == "1",
        )
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
    server.port = free_port()
    server.command += ["--port", str(server.port)]
    return server


def build_servers(args: argparse.Namespace, model_dir: Path) -> dict[str, Server]:
    servers = [build_server(target, args, model_dir) for target in args.targets]
    return {server.name: server for server in servers}


@contextlib.contextmanager
def only(servers: dict[str, Server], running: str | None) -> Iterator[None]:
    """Pause every server but ``running`` (None: all paused) for the duration of a measurement."""
    for name, server in servers.items():
        if name != running:
            server.pause(True)
    try:
        yield
    finally:
        for server in servers.values():
            server.pause(False)


def wrk(
    url: str, row: Row, connections: int, seconds: int, script: Path, auth: str = ""
) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, errors (non-2xx included)."""
    body = script.with_suffix(".body")  # a file: a binary body cannot pass in the environment
    body.write_bytes(row.body.encode() if isinstance(row.body, str) else row.body)
    headers = "\n".join(f"{name}: {value}" for name, value in row.headers.items())
    result = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(connections, 2)),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url + row.path,
        ],
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


def same_answers(reference: Server, other: Server, latent_dim: int) -> list[str]:
    """Requests on which two servers answer differently (empty: identical answers)."""
    probes = [
        ("/v1/generate", "", {"count": 3, "seed": 7}),
        ("/v1/generate", "", {"count": 2, "seed": 11, "temperature": 0.5}),
        ("/v1/generate?nrow=2&scale=3", "image/png", {"count": 5, "seed": 7}),
        ("/v1/generate", "image/png", {"count": 1, "seed": 3}),
        ("/v1/decode", "", {"latents": [[0.1 * i] * latent_dim for i in range(-3, 4)]}),
        ("/v1/decode", "image/png", {"latents": [[0.2] * latent_dim] * 64}),
    ]
    problems = []
    for path, accept, body in probes:
        answers = [
            httpx.post(server.url + path, json=body, headers=headers(server, accept), timeout=30)
            for server in (reference, other)
        ]
        if accept:
            same = answers[0].content == answers[1].content
        else:
            same = answers[0].json() == answers[1].json()
        if not same or answers[0].status_code != 200:
            problems.append(f"{path} {accept or 'json'} {body if len(str(body)) < 80 else ''}")
    return problems


def v2_rows(latent_dim: int) -> dict[str, Row]:
    """TensorFlow Serving's predict and the Open Inference Protocol's infer, decoding the same
    64 codes as the decode rows: JSON floats, or float32 bytes in and out (tritonclient's
    default: binary inputs, ``binary_data_output``)."""
    codes = [[0.1] * latent_dim] * 64
    tensor = {"name": "z", "shape": [64, latent_dim], "datatype": "FP32"}
    json_body = json.dumps({"inputs": [{**tensor, "data": [v for row in codes for v in row]}]})
    size = 64 * latent_dim * 4
    head = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": size}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    binary = head + b"".join(struct.pack("<f", v) for row in codes for v in row)
    return {
        "predict-json": Row(
            "TF Serving predict (64 codes)",
            "/v1/models/vae:predict",
            json.dumps({"instances": codes}),
            clients=(16,),
        ),
        "decode-v2-json": Row(
            "v2 decode JSON (64 codes)", "/v2/models/vae/infer", json_body, clients=(16,)
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
        ),
    }


def signature_images_per_second(
    model_dir: Path, threads: int, inter_threads: int, seconds: float
) -> dict[str, float]:
    """Direct calls of the ``decode`` signature on 64 codes, in a fresh process."""
    code = f"""
import json, time, numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads({threads})
tf.config.threading.set_inter_op_parallelism_threads({inter_threads})
base = {str(model_dir / "vae")!r}
import os
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
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every cell this many times (interleaved); print medians",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma-separated, in this order: bare, service, litserve, "
        "service@2 (two uvicorn workers), proto:DIR (the service run from a "
        "prototype copy of the repository, DIR/app), proto@2:DIR; any of them "
        "with ?KEY=VALUE&... for its environment (keys=1: API keys on, the key sent "
        "with every request), and LABEL= before it for a short name, e.g. "
        "'t1=service?VAE_INTRA_OP_THREADS=1'",
    )
    parser.add_argument(
        "--rows",
        default="generate,decode,decode-png",
        help="comma-separated subset of generate,decode,decode-png,decode-npy "
        "(binary answer, Accept: application/x-npy), predict-json (TF Serving's predict), "
        "decode-v2-json, decode-v2-binary (the Open Inference Protocol, JSON or binary "
        "tensors); each of the last four decodes 64 codes at 16 clients",
    )
    parser.add_argument(
        "--clients", default="", help="override the concurrency of every row, e.g. 16 or 1,16,64"
    )
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=100000,
        help="generate requests between the two memory readings (0: skip)",
    )
    parser.add_argument(
        "--no-signature", action="store_true", help="skip the decoder signature's own images/s"
    )
    # The defaults are the service's own (app/config.py): two workers, one TensorFlow thread each.
    parser.add_argument("--threads", type=int, default=1, help="VAE_INTRA_OP_THREADS")
    parser.add_argument("--inter-threads", type=int, default=1, help="VAE_INTER_OP_THREADS")
    parser.add_argument(
        "--service-workers", type=int, default=2, help="uvicorn worker processes of the service"
    )
    parser.add_argument(
        "--litserve-args",
        default="",
        help="extra flags for benchmarks/litserve_app.py, e.g. '--fast-queue'",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    return args


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    if "litserve" in args.targets:
        ensure_litserve()
    model_dir = Path(args.model_dir).resolve()
    servers = build_servers(args, model_dir)
    results: dict = {
        "rows": [],
        "memory": {},
        "signature": None,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    try:
        for server in servers.values():
            server.start()
        models = [s for s in servers.values() if s.name != "bare"]
        latent_dim = 20
        for server in models:
            if server.ready_path == "/readyz":
                latent_dim = httpx.get(server.url + "/v1/model", headers=headers(server)).json()[
                    "latent_dim"
                ]
                break
        for other in models[1:]:
            problems = same_answers(models[0], other, latent_dim)
            print(
                f"answers of {models[0].name} and {other.name}: "
                + ("identical" if not problems else f"DIFFER on {problems}"),
                flush=True,
            )

        decode_body = json.dumps({"latents": [[0.1] * latent_dim] * 64})
        all_rows = {
            "generate": Row("generate (count 1)", "/v1/generate", json.dumps({"count": 1})),
            "decode": Row("decode (64 codes)", "/v1/decode", decode_body),
            "decode-png": Row(
                "decode PNG (64 codes)", "/v1/decode", decode_body, "image/png", (16,)
            ),
            "decode-npy": Row(
                "decode npy (64 codes)", "/v1/decode", decode_body, "application/x-npy", (16,)
            ),
        }
        all_rows.update(v2_rows(latent_dim))
        rows = [all_rows[name] for name in args.rows.split(",") if name]
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            script.write_text(WRK_SCRIPT)
            for row in rows:
                clients = (
                    tuple(int(c) for c in args.clients.split(",")) if args.clients else row.clients
                )
                for connections in clients:
                    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                    for _ in range(args.rounds):
                        for name, server in servers.items():
                            with only(servers, name):
                                runs[name].append(
                                    wrk(
                                        server.url,
                                        row,
                                        connections,
                                        args.duration,
                                        script,
                                        server.auth,
                                    )
                                )
                    cell = {
                        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
                        for name, rs in runs.items()
                    }
                    results["rows"].append({"row": row.name, "clients": connections, **cell})
                    print_row(row.name, connections, cell)

            if not args.no_signature:
                with only(servers, None):
                    results["signature"] = signature_images_per_second(
                        model_dir, args.threads, args.inter_threads, max(3, args.duration)
                    )
                sig = results["signature"]
                print(
                    f"decode signature alone, 64 codes: {sig['float32']:,.0f} images/s "
                    f"(float32), {sig['uint8']:,.0f} images/s with the uint8 conversion",
                    flush=True,
                )

            if args.memory_requests:
                generate = all_rows["generate"]
                for name, server in servers.items():
                    if name == "bare":
                        continue
                    rate = max(
                        (r[name]["rps"] for r in results["rows"] if r["row"] == generate.name),
                        default=500,
                    )
                    before = server.rss_mb()
                    sent = 0
                    with only(servers, name):
                        while sent < args.memory_requests:  # wrk runs for a time, not a count
                            seconds = max(3, int((args.memory_requests - sent) / rate) + 1)
                            sent += wrk(server.url, generate, 16, seconds, script, server.auth)[
                                "requests"
                            ]
                    after = server.rss_mb()
                    results["memory"][name] = {"before": before, "after": after, "requests": sent}
                    print(
                        f"{name} memory: {before:.0f} MB before, {after:.0f} MB after "
                        f"{sent} more requests ({after - before:+.0f} MB)",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()

    print_table(results, list(servers))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def print_row(name: str, connections: int, cell: dict[str, dict[str, float]]) -> None:
    bare = cell.get("bare", {}).get("rps")
    parts = []
    for target, r in cell.items():
        ratio = f" ({r['rps'] / bare:.2f}x)" if bare and target != "bare" else ""
        errors = f" ERRORS {r['errors']:.0f}" if r["errors"] else ""
        parts.append(
            f"{target} {r['rps']:7.0f} req/s p50 {r['p50']:6.1f} p99 {r['p99']:6.1f} ms"
            f"{ratio}{errors}"
        )
    print(f"{name:22} c={connections:<3} " + " | ".join(parts), flush=True)


def print_table(results: dict, targets: list[str]) -> None:
    head = "| row | clients |"
    rule = "|---|---:|"
    for target in targets:
        head += f" {target} req/s | p50 ms | p99 ms |"
        rule += "---:|---:|---:|"
        if target != "bare" and "bare" in targets:
            head += " ratio |"
            rule += "---:|"
    print("\n" + head + "\n" + rule)
    for row in results["rows"]:
        line = f"| {row['row']} | {row['clients']} |"
        for target in targets:
            r = row[target]
            failed = " (errors)" if r["errors"] else ""
            line += f" {r['rps']:.0f}{failed} | {r['p50']:.1f} | {r['p99']:.1f} |"
            if target != "bare" and "bare" in targets:
                line += f" {r['rps'] / row['bare']['rps']:.2f} |"
        print(line)
    sig = results["signature"]
    if sig:
        print(
            f"\nDecoder signature alone (64 codes, in-process TensorFlow): "
            f"{sig['float32']:,.0f} images/s; with the uint8 conversion {sig['uint8']:,.0f}."
        )
        for row in results["rows"]:
            if row["row"].startswith("decode"):
                rates = ", ".join(
                    f"{t} {64 * row[t]['rps']:,.0f}"
                    for t in targets
                    if t != "bare" and not row[t]["errors"]
                )
                print(f"  {row['row']} at {row['clients']} clients, images/s: {rates}")
    for name, m in results["memory"].items():
        print(
            f"{name}: resident memory {m['before']:.0f} MB before, {m['after']:.0f} MB after "
            f"{m['requests']} more generate requests ({m['after'] - m['before']:+.0f} MB)."
        )


if __name__ == "__main__":
    main()
