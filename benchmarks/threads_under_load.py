"""Seconds of one `cosynth generate` pair per torch thread count, on a quiet machine and with cores busy.

    python benchmarks/threads_under_load.py --threads 1 2 --busy 0 1 --repeats 2

For every (busy cores, threads) it runs ``cosynth generate`` for one pair of the same layout and seed
(start-up included, as a user waits for it) in a fresh process with ``COSYNTH_THREADS`` set, while
``busy`` processes spin in a loop (one core each). Prints JSON: the wall seconds of every run.
The widget's timing under load: ``benchmarks/gui_responsiveness.py`` with a busy process beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYOUT = "x,y,class\n20,30,1\n60,70,2\n100,40,3\n90,100,4\n30,100,2\n64,20,3\n"


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _one_pair(args, threads: int, points: Path, out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["COSYNTH_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "napari_cosynth.cli", "generate", "--model", args.model, "--points",
           str(points), "--size", "128", "128", "--seed", "1", "--sampler", args.sampler, "--device",
           "cpu", "--out", str(out), "--quiet"]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--sampler", default="dpm++2m")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy cores to try")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    results, load_before = [], os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        points = Path(tmp) / "points.csv"
        points.write_text(LAYOUT)
        for busy in args.busy:
            spinners = [_busy() for _ in range(busy)]
            try:
                for threads in args.threads:
                    for r in range(args.repeats):
                        out = Path(tmp) / f"b{busy}-t{threads}-{r}"
                        seconds = _one_pair(args, threads, points, out)
                        results.append({"busy_cores": busy, "threads": threads, "seconds": round(seconds, 2)})
                        print(json.dumps(results[-1]), file=sys.stderr)
            finally:
                for p in spinners:
                    p.kill()
                    p.wait()
    print(json.dumps({"cpus": os.cpu_count(), "sampler": args.sampler, "steps": args.steps,
                      "load_before": load_before, "load_after": os.getloadavg(), "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
