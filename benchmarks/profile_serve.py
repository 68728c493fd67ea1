"""Where a server's CPU goes per request, under wrk: per thread, and per kind of work.

Starts one server of ``serve_bench.py`` (bare, service or litserve), loads it with wrk for each
row and reads every thread's CPU time (``/proc/<pid>/task/<tid>/stat``) before and after, so it
prints microseconds of CPU per request for the event loop, the inference thread, TensorFlow's
pools and so on. With ``--py-spy`` it then samples the same load with py-spy (a second run:
sampling slows the server) and splits each Python thread's CPU into kinds of work (HTTP
protocol, routing, dependency solving, validation, JSON, the TensorFlow call, PNG, base64, the
hand-off between threads...), scaled to the first run's microseconds per request.

    python -m benchmarks.profile_serve --target service --rows generate --clients 1,16,64 --py-spy
    python -m benchmarks.profile_serve --target bare --rows generate --clients 16

``--gil`` keeps only the samples that hold the interpreter lock (the serial part); ``--native``
adds C frames (slower); ``--keep DIR`` keeps py-spy's raw stacks (flamegraph.pl input).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.serve_bench import (
    ROOT,
    WRK_SCRIPT,
    Row,
    Server,
    all_rows,
    build_server,
    ensure_litserve,
    wrk,
)

CLOCK_TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

# (kind of work, patterns in a frame "function (file:line)"); the innermost frame that matches
# any pattern decides the kind of a sample, patterns tried in this order.
KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("JSON encode", ("json/encoder.py", "dumps (json", "orjson", "render (starlette/responses")),
    ("JSON decode", ("json/decoder.py", "loads (json", "Request.json")),
    ("pydantic validation", ("pydantic/", "fastapi/_compat", "_validate (", "validate_python")),
    ("PNG (Pillow)", ("PIL/",)),
    ("base64", ("base64.py",)),
    ("pixels/grid (numpy)", ("app/media/pictures.py", "benchmarks/litserve_app.py:to_pixels")),
    ("TF: inputs tf.constant", ("constant_op.py", "convert_to_tensor")),
    ("TF: outputs .numpy()", ("_numpy (tensorflow", "numpy (tensorflow")),
    ("TF: kernels (native, quick_execute)", ("quick_execute",)),
    ("TF: Python call path", ("tensorflow/",)),
    ("prometheus_client", ("prometheus_client/",)),
    ("metrics middleware", ("app/edge/request_metrics.py", "app/metrics.py")),
    ("request guard middleware", ("app/edge/request_guard.py",)),
    ("admission control", ("app/serving/admission.py",)),
    ("lifecycle (lease, run)", ("app/serving/lifecycle.py", "app/serving/servable.py")),
    ("answer encoding", ("app/api/answers.py",)),
    ("dependency solving", ("fastapi/dependencies/",)),
    ("response serialisation", ("serialize_response", "fastapi/encoders.py")),
    ("responses (Starlette)", ("starlette/responses.py",)),
    ("request body", ("starlette/requests.py",)),
    ("negotiation", ("app/edge/negotiation.py",)),
    (
        "batcher: hand-off",
        (
            "call_soon_threadsafe",
            "resolve (app/serving/batching",
            "_settle (app/serving/batch",
            "run (app/serving/batching",
        ),
    ),
    ("batcher: merge/split", ("app/serving/batching.py",)),
    ("handlers (app/api/)", ("app/api/",)),
    ("uploads, PNG writer", ("app/media/",)),
    ("connection protocol", ("app/edge/connection.py",)),
    ("LitServe", ("litserve/",)),
    ("zmq/multiprocessing", ("zmq/", "multiprocessing/", "pickle")),
    ("routing, middleware stack (FastAPI/Starlette)", ("fastapi/", "starlette/", "anyio/")),
    ("uvicorn HTTP protocol (httptools)", ("uvicorn/protocols/http", "httptools")),
    ("uvicorn other", ("uvicorn/",)),
    ("asyncio/uvloop", ("asyncio/", "uvloop", "uv_", "epoll")),
    ("queue wait", ("queue.py", "SimpleQueue", "threading.py")),
]


def group_pids(server: Server) -> list[int]:
    """Every process in the server's process group (LitServe runs several)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if server.process is not None and int(fields[2]) == server.process.pid:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def loaded_accelerators(pids: list[int]) -> str:
    """Whether uvloop and httptools are loaded in the server's processes (uvicorn falls back
    to asyncio and h11 without a word when they are missing)."""
    found = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        found |= {name for name in ("uvloop/loop", "httptools/parser") if name in maps}
    return ", ".join(
        f"{name.split('/')[0]} {'loaded' if name in found else 'NOT loaded'}"
        for name in ("uvloop/loop", "httptools/parser")
    )


def python_thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, from ``py-spy dump``."""
    out = subprocess.run(
        [PY_SPY, "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True
    ).stdout
    return {int(tid): name for tid, name in re.findall(r'Thread (\d+) \(\w+\): "([^"]*)"', out)}


def cpu_ticks(pids: list[int]) -> dict[tuple[int, int], tuple[str, int]]:
    """(pid, tid) -> (thread name from /proc, user + system CPU in clock ticks)."""
    ticks = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (task / "comm").read_text().strip()
            except OSError:
                continue
            ticks[(pid, int(task.name))] = (comm, int(fields[11]) + int(fields[12]))
    return ticks


def thread_labels(pids: list[int]) -> dict[tuple[int, int], str]:
    """A readable label per thread: process role, then Python name or /proc comm."""
    labels = {}
    for index, pid in enumerate(pids):
        names = python_thread_names(pid)
        comms = {
            int(t.name): (t / "comm").read_text().strip()
            for t in Path(f"/proc/{pid}/task").glob("*")
        }
        role = "worker" if "tf_Compute" in comms.values() else "http"
        prefix = f"{role}#{index} " if len(pids) > 1 else ""
        for tid, comm in comms.items():
            name = names.get(tid)
            if name == "MainThread" and role == "http":
                name = "event loop (MainThread)"
            labels[(pid, tid)] = prefix + (name or f"[native] {comm}")
    return labels


def cpu_per_request(
    server: Server, row: Row, clients: int, seconds: int, script: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """CPU microseconds per request by thread label (threads of one label summed)."""
    pids = group_pids(server)
    labels = thread_labels(pids)
    before = cpu_ticks(pids)
    load = wrk(server.url, row, clients, seconds, script)
    after = cpu_ticks(pids)
    per_label: dict[str, float] = collections.defaultdict(float)
    for key, (_, ticks) in after.items():
        spent = ticks - before.get(key, ("", 0))[1]
        if spent > 0:
            label = labels.get(key, f"[new] {after[key][0]}")
            label = re.sub(r" ?#\d+$", "", label)
            per_label[label] += spent / CLOCK_TICKS / load["requests"] * 1e6
    return dict(per_label), load


def kind_of(stack: list[str]) -> str:
    for frame in reversed(stack):  # innermost first
        for kind, patterns in KINDS:
            if any(p in frame for p in patterns):
                return kind
    return "other"


def py_spy_kinds(
    server: Server, row: Row, clients: int, seconds: int, script: Path, args: argparse.Namespace
) -> tuple[dict[str, collections.Counter], float]:
    """Samples per kind of work, per thread name, from py-spy's raw output under wrk, and the
    number of requests answered while sampling."""
    pids = group_pids(server)
    kinds: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    with tempfile.TemporaryDirectory() as tmp:
        recorders = []
        for pid in pids:
            out = Path(args.keep or tmp) / f"pyspy-{row.name.split()[0]}-c{clients}-{pid}.raw"
            command = [
                PY_SPY,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--threads",
                "--rate",
                str(args.rate),
                "--duration",
                str(max(1, seconds - 1)),
                "-o",
                str(out),
            ]
            # Native stacks need the process paused while sampled; Python stacks do not.
            command += ["--native"] if args.native else ["--nonblocking"]
            command += ["--gil"] if args.gil else []
            recorders.append(
                (
                    pid,
                    out,
                    subprocess.Popen(
                        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
                    ),
                )
            )
        time.sleep(0.5)
        load = wrk(server.url, row, clients, seconds, script)
        # Requests answered while py-spy sampled (it stops a second before wrk).
        sampled_requests = load["requests"] * max(1, seconds - 1) / seconds
        for _pid, out, recorder in recorders:
            _, errors = recorder.communicate()
            if not out.exists():
                print(f"  py-spy failed: {errors.strip()[-300:]}")
                continue
            for line in out.read_text().splitlines():
                stack_text, _, count = line.rpartition(" ")
                frames = stack_text.split(";")
                thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
                kinds[thread][kind_of(frames[1:])] += int(count)
    return kinds, sampled_requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target",
        default="service",
        help="bare, service, litserve, service@2, proto:DIR (see serve_bench)",
    )
    parser.add_argument("--model-dir", default="model")
    parser.add_argument("--rows", default="generate", help="generate,decode,decode-png")
    parser.add_argument("--clients", default="16")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=1, help="TensorFlow intra- and inter-op threads"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--litserve-args", default="")
    parser.add_argument("--py-spy", action="store_true", help="also split CPU by kind of work")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--gil", action="store_true", help="py-spy --gil: lock holders only")
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw stacks in this folder")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.target.startswith("litserve"):
        ensure_litserve()
    if not Path(PY_SPY).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    server = build_server(args.target, args, Path(args.model_dir).resolve())
    rows = all_rows(20)
    figures = []
    server.start()
    print(f"{server.name}: {loaded_accelerators(group_pids(server))}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "post.lua"
            script.write_text(WRK_SCRIPT)
            for name in args.rows.split(","):
                row = rows[name]
                for clients in (int(c) for c in args.clients.split(",")):
                    wrk(server.url, row, clients, 2, script, server.auth)  # warm up
                    cpu, load = cpu_per_request(server, row, clients, args.duration, script)
                    report(args.target, row, clients, cpu, load)
                    figure = {"row": row.name, "clients": clients, "load": load, "cpu_us": cpu}
                    if args.py_spy:
                        kinds, requests = py_spy_kinds(
                            server, row, clients, args.duration, script, args
                        )
                        figure["kinds"] = report_kinds(kinds, requests, args.rate, args.gil)
                    figures.append(figure)
    finally:
        server.stop()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def report(target: str, row: Row, clients: int, cpu: dict[str, float], load: dict) -> None:
    print(
        f"\n{target}: {row.name}, {clients} clients: {load['rps']:.0f} req/s, "
        f"p50 {load['p50']:.1f} ms, p99 {load['p99']:.1f} ms; CPU per request:"
    )
    for label, micros in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {label:42} {micros:8.0f} us")
    print(f"  {'total':42} {sum(cpu.values()):8.0f} us")


def report_kinds(
    kinds: dict[str, collections.Counter], requests: float, rate: int, gil: bool
) -> dict[str, dict[str, float]]:
    """Each Python thread's samples by kind, as microseconds per request: a sample stands for
    1/rate s of that thread on the CPU (with --gil: holding the interpreter lock). py-spy's
    own sampling slows the server, so these run a little higher than the /proc figures."""
    what = "holding the GIL" if gil else "on the CPU"
    scaled = {}
    for thread, counter in kinds.items():
        total = sum(counter.values()) / rate / requests * 1e6
        print(f"  py-spy, thread {thread!r}, {what}: {total:.0f} us/request, of which:")
        scaled[thread] = {}
        for kind, count in counter.most_common():
            value = count / rate / requests * 1e6
            scaled[thread][kind] = value
            if value >= 0.01 * total:
                print(f"    {kind:44} {value:8.1f}")
    return scaled


if __name__ == "__main__":
    if not (ROOT / "benchmarks").is_dir():
        sys.exit("run from the repository: python -m benchmarks.profile_serve")
    main()
