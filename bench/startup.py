"""Time from `siyu serve` to the first 200 from /healthz, on an existing database.

Usage: python bench/startup.py [runs]. Prints each run and the median.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(runs: int = 5) -> None:
    siyu = str(Path(sys.executable).with_name("siyu"))
    var = tempfile.mkdtemp(prefix="siyu-bench-")
    env = {**os.environ, "SIYU_VAR_DIR": var, "SIYU_LOG_LEVEL": "WARNING"}
    subprocess.run([siyu, "demo", "--customers", "200"], env=env, check=True, capture_output=True)
    times = []
    try:
        for i in range(runs):
            port = free_port()
            start = time.perf_counter()
            proc = subprocess.Popen([siyu, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                while True:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                            if r.status == 200:
                                break
                    except OSError:
                        time.sleep(0.02)
                    if time.perf_counter() - start > 30:
                        raise SystemExit("server did not answer within 30 s")
                elapsed = time.perf_counter() - start
            finally:
                proc.terminate()
                proc.wait(10)
            times.append(elapsed)
            print(f"run {i + 1}: {elapsed:.2f} s")
    finally:
        shutil.rmtree(var, ignore_errors=True)
    print(f"median {statistics.median(times):.2f} s, max {max(times):.2f} s over {runs} runs")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
