"""Serving benchmark: the real service beside a bare FastAPI endpoint, in one run.

Starts `vae-serve` on the newest model and `benchmarks/bare_app.py` (a FastAPI endpoint that
returns a constant) on loopback, loads both with wrk (Debian package `wrk`) and prints
requests/s and p50/p99 latency for generate (count 1) and decode (64 codes) at 1, 16 and 64
concurrent connections, then the service's resident memory over 10,000 more requests.

    python benchmarks/serve_bench.py [--model-dir model] [--duration 10] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = (1, 16, 64)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    """Start a server and wait until it answers /readyz."""
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode}: {' '.join(command)}")
        time.sleep(0.3)
    process.kill()
    sys.exit(f"server did not become ready: {' '.join(command)}")


def wrk(url: str, body: str, connections: int, seconds: int, script: Path) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, errors."""
    result = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
         "--timeout", "10s", "-s", str(script), url],
        env={**os.environ, "BENCH_BODY": body}, capture_output=True, text=True, check=True,
    )
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", result.stdout)
    if not match:
        sys.exit(f"could not read wrk's output:\n{result.stdout}\n{result.stderr}")
    requests, micros, p50, p99, errors, _ = (int(g) for g in match.groups())
    return {"rps": requests / (micros / 1e6), "p50": p50 / 1000, "p99": p99 / 1000,
            "errors": errors, "requests": requests}


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="model")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--memory-requests", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2, help="VAE_INTRA_OP_THREADS")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")

    service_port, bare_port = free_port(), free_port()
    env = {"VAE_MODEL_DIR": str(Path(args.model_dir).resolve()), "VAE_LOG_LEVEL": "warning",
           "VAE_INTRA_OP_THREADS": str(args.threads), "VAE_INTER_OP_THREADS": "2",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    service = start([sys.executable, "-m", "app.cli", "--port", str(service_port)], env,
                    service_port)
    bare = start([sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--port",
                  str(bare_port), "--log-level", "warning"], {}, bare_port)
    latent_dim = httpx.get(f"http://127.0.0.1:{service_port}/v1/model").json()["latent_dim"]
    cases = {
        "generate (count 1)": ("/v1/generate", json.dumps({"count": 1})),
        "decode (64 codes)": ("/v1/decode", json.dumps({"latents": [[0.1] * latent_dim] * 64})),
    }
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            script.write_text(WRK_SCRIPT)
            for name, (path, body) in cases.items():
                for connections in CONNECTIONS:
                    # Side by side: the bare endpoint, then the service, same load.
                    base = wrk(f"http://127.0.0.1:{bare_port}{path}", body, connections,
                               args.duration, script)
                    real = wrk(f"http://127.0.0.1:{service_port}{path}", body, connections,
                               args.duration, script)
                    rows.append((name, connections, real, base))
                    print(f"{name:20} c={connections:<3} service {real['rps']:7.0f} req/s "
                          f"p50 {real['p50']:6.1f} ms p99 {real['p99']:6.1f} ms | bare "
                          f"{base['rps']:7.0f} req/s | ratio {real['rps'] / base['rps']:.2f} "
                          f"| errors {real['errors']}", flush=True)

            # Memory: resident set before and after N more generate requests.
            before = rss_mb(service.pid)
            body = json.dumps({"count": 1})
            per_second = max(r[2]["rps"] for r in rows if r[0].startswith("generate"))
            seconds = max(5, int(args.memory_requests / per_second) + 1)
            load = wrk(f"http://127.0.0.1:{service_port}/v1/generate", body, 16, seconds, script)
            after = rss_mb(service.pid)
    finally:
        service.terminate()
        bare.terminate()
        service.wait(30)
        bare.wait(30)

    print("\n| endpoint | clients | service req/s | p50 ms | p99 ms | bare req/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, connections, real, base in rows:
        print(f"| {name} | {connections} | {real['rps']:.0f} | {real['p50']:.1f} | "
              f"{real['p99']:.1f} | {base['rps']:.0f} | {real['rps'] / base['rps']:.2f} |")
    print(f"\nResident memory: {before:.0f} MB before, {after:.0f} MB after "
          f"{load['requests']} more requests ({after - before:+.0f} MB).")


if __name__ == "__main__":
    main()
