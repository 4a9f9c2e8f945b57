"""What every benchmark script shares: each path runs in a process of its own, so that its
peak memory (max RSS) is its own, and reports one JSON line back.

Peak memory is the larger of the process's own peak RSS (``VmHWM``: ``ru_maxrss`` would not
do, Linux carries it over from the parent across fork and exec) and the summed RSS of it and
its children (a Spark JVM, its Python workers), sampled every 50 ms."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable


def report(run: Callable[[str], dict], data: str) -> None:
    """In the child: run ``run(data)`` and print its result with wall time and peak memory."""
    warnings.simplefilter("ignore")
    tree = _TreePeak()
    start = time.perf_counter()
    try:
        result = run(data)
    except MemoryError:
        result = {"error": "MemoryError"}
    result["wall_s"] = time.perf_counter() - start
    result["peak_mib"] = max(_own_peak_mib(), tree.stop())
    print(json.dumps(result))


def _own_peak_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (benchmarks need Linux)")


class _TreePeak:
    """The peak of this process's and its children's summed RSS, sampled in a thread."""

    def __init__(self, every: float = 0.05) -> None:
        import psutil

        self.peak, self.done = 0.0, threading.Event()
        me = psutil.Process()

        def sample() -> None:
            while not self.done.wait(every):
                total = 0
                for p in [me, *me.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:  # a child that just ended
                        pass
                self.peak = max(self.peak, total / 2**20)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak


def in_child(
    script: str,
    which: str,
    data: str,
    *options: str,
    timeout: float | None = None,
    stop_on_error: bool = True,
) -> dict:
    """In the parent: run ``script --child which --data data [options]`` and read its result.

    A child that is killed (out of memory), fails or runs past ``timeout`` seconds stops the
    benchmark, or with ``stop_on_error=False`` gives ``{"error": ...}`` with its wall time:
    where a path stops is then a result too.
    """
    result = _run_child(script, which, data, options, timeout)
    if stop_on_error and "error" in result:
        raise SystemExit(f"{which}: {result['error']}")
    return result


def _run_child(script: str, which: str, data: str, options, timeout: float | None) -> dict:
    start = time.perf_counter()
    try:
        out = subprocess.run(
            [sys.executable, script, "--child", which, "--data", data, *options],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s", "wall_s": time.perf_counter() - start}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        why = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return {"error": why[:120], "wall_s": time.perf_counter() - start}
    return json.loads(lines[-1])
