"""Check a running compose stack through its balancer: replicas, same digits, no failures.

    docker compose up -d --scale api=3
    python deploy/check_balancer.py                       # http://127.0.0.1:8000
    python deploy/check_balancer.py --seconds 30          # meanwhile: docker stop <a replica>

Sends ``POST /v1/generate {"count": 4, "seed": 7}`` for PNG, again and again, and reports which
replica answered each (nginx's ``X-Upstream`` header), whether every replica returned the same
bytes, and every failed request. Exits 1 when a request failed, when the replicas disagree, or
when fewer than ``--min-replicas`` answered. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter


def generate_png(url: str, seed: int) -> tuple[str, bytes]:
    """One seeded generate request through the balancer: (replica address(es), PNG bytes)."""
    request = urllib.request.Request(
        f"{url}/v1/generate",
        data=json.dumps({"count": 4, "seed": seed}).encode(),
        headers={"Content-Type": "application/json", "Accept": "image/png"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers.get("X-Upstream", "?"), response.read()


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the balancer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=60, help="at least this many requests")
    parser.add_argument("--seconds", type=float, default=0, help="and for at least this long")
    parser.add_argument("--min-replicas", type=int, default=2)
    args = parser.parse_args(argv)

    answered: Counter[str] = Counter()
    digests: dict[str, set[str]] = {}
    failures: list[str] = []
    started = time.monotonic()
    sent = 0
    while sent < args.requests or time.monotonic() - started < args.seconds:
        sent += 1
        try:
            upstream, png = generate_png(args.url, args.seed)
        except (urllib.error.URLError, OSError) as error:
            failures.append(f"{time.monotonic() - started:6.1f} s: {error}")
            continue
        answered[upstream] += 1
        # The replica that finally answered is the last address of the header.
        digests.setdefault(upstream.split(", ")[-1], set()).add(hashlib.sha256(png).hexdigest())

    print(f"{sent} requests in {time.monotonic() - started:.1f} s, {len(failures)} failed")
    for upstream, count in sorted(answered.items()):
        print(f"  {count:5d} answered by {upstream}")
    every_digest = set().union(*digests.values()) if digests else set()
    print(
        f"{len(digests)} replicas answered; distinct PNGs for seed {args.seed}: "
        f"{len(every_digest)} {sorted(d[:16] for d in every_digest)}"
    )
    for failure in failures:
        print(f"  failed at {failure}")
    ok = not failures and len(every_digest) == 1 and len(digests) >= args.min_replicas
    print("OK" if ok else "NOT OK")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
