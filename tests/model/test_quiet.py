"""TensorFlow's start-up noise is dropped at the file-descriptor level; every other line passes,
even when the process dies right after writing it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from vae_contract.quiet import noise_pattern

WRITE_THEN = textwrap.dedent(
    """
    import os, sys
    from vae_contract.quiet import filtered_stderr, noise_pattern
    with filtered_stderr(noise_pattern(has_nvidia_device=False)):
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see...\\n")
        os.write(2, b"a real problem\\n")
        print("from Python", file=sys.stderr, flush=True)
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n")
        os.write(2, b"the last words\\n")
        if sys.argv[1] == "abort":
            os.abort()
    print("after", file=sys.stderr)
    """
)


def run(how: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WRITE_THEN, how], capture_output=True, text=True, timeout=60
    )


def test_noise_is_dropped_and_everything_else_passes_in_order():
    result = run("finish")
    assert result.returncode == 0
    assert result.stderr == "a real problem\nfrom Python\nthe last words\nafter\n"


def test_lines_written_just_before_an_abort_still_come_out():
    result = run("abort")
    assert result.returncode != 0
    assert "a real problem\nfrom Python\nthe last words\n" in result.stderr
    assert "oneDNN" not in result.stderr


def test_cuda_lines_are_news_on_a_machine_with_an_nvidia_device():
    line = "failed call to cuInit: CUDA_ERROR_NO_DEVICE"
    assert noise_pattern(has_nvidia_device=False).search(line)
    assert not noise_pattern(has_nvidia_device=True).search(line)
    assert noise_pattern(has_nvidia_device=True).search("oneDNN custom operations are on")
