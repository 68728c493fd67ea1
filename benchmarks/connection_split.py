"""How wrk's connections split between a server's worker processes, run after run.

Starts each target of ``serve_bench.py`` (for example the service and the service from another
checkout), runs wrk on ``/v1/generate`` several times, and halfway through each run reads which
worker process holds each established connection (``ss -tnp``, iproute2): with one shared
listening socket the worker woken first accepts every connection waiting; with a socket per
worker (``SO_REUSEPORT``) the kernel spreads them.

    python -m benchmarks.connection_split --targets service,shared=proto:/tmp/other --runs 6
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.serve_bench import WRK_SCRIPT, all_rows, build_server, wrk


def split(port: int) -> list[int]:
    """Established connections on ``port`` per process, largest first."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(collections.Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="model")
    parser.add_argument("--targets", default="service")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.threads, args.litserve_args = 1, ""
    row = all_rows(20)["generate"]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        for target in args.targets.split(","):
            server = build_server(target, args, Path(args.model_dir).resolve())
            server.start()
            try:
                with ThreadPoolExecutor(1) as pool:
                    for _ in range(args.runs):
                        run = pool.submit(wrk, server.url, row, args.clients, args.duration, script)
                        time.sleep(args.duration / 2)  # mid-run: every connection is open
                        held = split(int(server.url.rsplit(":", 1)[1]))
                        rate = run.result()["rps"]
                        print(f"{server.name:10} split {held}  {rate:6.0f} req/s", flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
