"""The soak's short version (``benchmarks/soak.py`` runs the long one: 100,000 requests):
mixed requests against a real server process, resident memory flat after the warm-up, every
answer as expected; and the deliberately leaking control, which the same check must catch."""

from __future__ import annotations

from benchmarks import soak
from tests.support.live import LiveServer

REQUESTS = 5000
MAX_GROWTH_MB = 20  # a leak of 4 kB a request would show here; the long soak allows 100 MB


def test_a_short_soak_keeps_memory_flat_and_every_answer_right():
    with LiveServer() as server:
        result = soak.run(server, REQUESTS, warm_up=1000)
    print(
        f"\nsoak: {result.requests} requests in {result.seconds:.1f} s, RSS "
        f"{result.baseline_mb:.1f} -> {result.final_mb:.1f} MB (+{result.growth_mb:.1f}), "
        f"statuses {dict(result.statuses)}"
    )
    assert not result.unexpected, result.unexpected[:10]
    assert sum(result.statuses.values()) == REQUESTS
    assert result.passed(MAX_GROWTH_MB)


def test_the_soak_check_catches_a_leaking_server():
    """The control: a server keeping 8 kB per request (40 MB over the run) fails the check."""
    with LiveServer(leak_bytes=8 * 1024) as server:
        result = soak.run(server, REQUESTS, warm_up=1000)
    print(f"\nleaking control: RSS +{result.growth_mb:.1f} MB")
    assert not result.unexpected
    assert not result.passed(MAX_GROWTH_MB)
