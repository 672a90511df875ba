"""The widget's pair against a one-thread `cosynth generate` of the same layout and seed, with a core kept busy.

Issue 12's target for generation under load: with one core busy, a pair in the napari widget takes no
longer than ``cosynth generate`` (start-up included) of the same layout. This benchmark measures both
in one go, while ``--busy`` processes of its own spin in a loop (one core each):

- the widget: the CoSynth dock widget in a napari viewer, the bundled model loaded once (as a user has
  it before clicking), the shipped sample layout, the widget's default sampler; one ``generate`` click
  timed until the worker's result arrives (``sampling_s``) and until the new layers are on screen and
  the widget is idle again (``pair_s``, what the user waits), with the longest stall of the event loop;
- the command: ``cosynth generate --points <the same layout> --tissue <the widget's> --seed S --size H W``
  in a fresh process with ``COSYNTH_THREADS=1`` (start-up included), same sampler defaults.

Runs alternate which of the two goes first. The two pairs are compared (the widget's pair is the pair
the command draws: same seed rule, same prompt). Run under a display or Xvfb::

    xvfb-run -a python benchmarks/widget_under_load.py --busy 1 --repeats 3

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
from gui_responsiveness import wait  # benchmarks/ is the script's folder, so it is on sys.path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "COSYNTH_THREADS"):
    os.environ.pop(_var, None)  # the widget's own thread rule, as a user starts napari


def spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def cli_pair(layout: Path, tissue: str, seed: int, size: int, out: Path) -> float:
    """Wall seconds of one ``cosynth generate`` pair in a fresh one-thread process."""
    env = dict(os.environ, COSYNTH_THREADS="1")
    cmd = [sys.executable, "-m", "napari_cosynth.cli", "generate", "--model", "default", "--points",
           str(layout), "--tissue", tissue, "--size", str(size), str(size), "--seed", str(seed),
           "--device", "cpu", "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def widget_pair(widget) -> dict:
    """One generate click: seconds until the result arrives and until the widget is idle; longest stall."""
    from qtpy.QtCore import QElapsedTimer, QTimer

    gaps, clock, timer = [], QElapsedTimer(), QTimer()
    timer.timeout.connect(lambda: gaps.append(clock.restart()))
    clock.start()
    timer.start(10)
    arrived = []
    start = time.perf_counter()
    widget.generate.native.click()
    widget.runner.task.worker.returned.connect(lambda _: arrived.append(time.perf_counter()))
    wait(lambda: not widget.busy, 3600)
    done = time.perf_counter()
    timer.stop()
    return {"sampling_s": round(arrived[0] - start, 3) if arrived else None, "pair_s": round(done - start, 3),
            "max_gap_ms": float(max(gaps[1:], default=0))}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="cores kept busy by spinning processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args(argv)

    import napari

    from napari_cosynth.data.folder import read_sample
    from napari_cosynth.napari.sample_data import LAYOUT_FILE, layout_sample

    load_before = os.getloadavg()
    busy = spinners(args.busy)
    runs, tmp = [], tempfile.TemporaryDirectory()
    try:
        viewer = napari.Viewer(title="napari-cosynth")
        _, widget = viewer.window.add_plugin_dock_widget("napari-cosynth", "CoSynth")
        wait(lambda: widget.loaded is not None or widget.model_info.value == "no model loaded", 600)
        if widget.loaded is None:
            raise SystemExit("the bundled model did not load")
        (data, kwargs, _), = layout_sample()
        widget.points_layer.value = viewer.add_points(data, **kwargs)
        widget.height.value = widget.width.value = args.size
        widget.seed.value = str(args.seed)
        wait(lambda: True, 1)
        with as_file(files("napari_cosynth") / "resources" / LAYOUT_FILE) as layout:
            for r in range(args.repeats):
                row = {"repeat": r, "first": "cli" if r % 2 == 0 else "widget"}
                for which in ("cli", "widget") if r % 2 == 0 else ("widget", "cli"):
                    if which == "cli":
                        out = Path(tmp.name) / f"cli-{r}"
                        row["cli_s"] = round(cli_pair(layout, widget.tissue.value, args.seed, args.size, out), 3)
                    else:
                        row["widget"] = widget_pair(widget)
                row["load1"] = os.getloadavg()[0]
                runs.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        cli = read_sample(next(p for p in (Path(tmp.name) / "cli-0").iterdir() if p.is_dir()))
        shown = widget.runs[-1].sample
        same = {"image_max_abs_diff": int(np.abs(cli.image.astype(int) - shown.image.astype(int)).max()),
                "semantic_equal": bool(np.array_equal(cli.semantic, shown.semantic)),
                "widget_threads": shown.provenance.get("threads"), "cli_threads": cli.provenance.get("threads"),
                "sampler": shown.provenance.get("sampler"), "steps": shown.provenance.get("steps")}
        viewer.close()
    finally:
        for p in busy:
            p.kill()
            p.wait()
        tmp.cleanup()
    median = lambda key: float(np.median([key(r) for r in runs]))
    result = {
        "cpus": os.cpu_count(), "busy_cores": args.busy, "canvas": [args.size, args.size], "seed": args.seed,
        "load_before": load_before, "load_after": os.getloadavg(), "same_pair": same,
        "median": {"widget_pair_s": median(lambda r: r["widget"]["pair_s"]),
                   "widget_sampling_s": median(lambda r: r["widget"]["sampling_s"]),
                   "cli_s": median(lambda r: r["cli_s"])},
        "runs": runs,
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
