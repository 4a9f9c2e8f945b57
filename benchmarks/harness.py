"""What every benchmark script shares: each path runs in a process of its own, so that its
peak memory (max RSS) is its own, and reports one JSON line back."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable


def report(run: Callable[[str], dict], data: str) -> None:
    """In the child: run ``run(data)`` and print its result with wall time and peak memory."""
    warnings.simplefilter("ignore")
    start = time.perf_counter()
    result = run(data)
    result["wall_s"] = time.perf_counter() - start
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def in_child(script: str, which: str, data: str) -> dict:
    """In the parent: run ``script --child which --data data`` and read its result."""
    out = subprocess.run(
        [sys.executable, script, "--child", which, "--data", data],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])
