"""Where `cosynth generate` spends its time before sampling: imports by package, model load, first pair.

    python benchmarks/startup.py --repeats 3 [--importtime]

Every measurement runs in a fresh process (start-up is what a user waits for once per command), one
torch thread, the same layout and seed as ``benchmarks/threads_under_load.py``:

- ``generate``: wall seconds of ``cosynth generate`` for one 128 x 128 pair (default sampler);
- ``phases``: one process that imports in the order generate needs them and times each step: torch;
  ``diffusers.utils`` (which imports ``torch._dynamo``: ``diffusers.utils.torch_utils`` does so at
  import, so every diffusers import pays it); the UNet and scheduler classes; open_clip; napari-cosynth's
  pipeline; loading the bundled model; drawing the pair; writing it; and the process's exit (its wall
  time minus the phases: the interpreter's teardown). ``phases_gc_paused``: the same with the garbage
  collector paused during the diffusers and open_clip imports (what ``engine/heavy_imports.py`` does);
- ``pipeline_import``: ``import napari_cosynth.engine.pipeline.pipeline`` alone;
- ``bad_model``: ``cosynth generate --model /no/such/model`` until its one-line error;
- with ``--importtime``: one ``python -X importtime`` run of the command, its import time split by
  the package that pulled each module in (torch itself, torch._dynamo, diffusers, open_clip and timm,
  scipy, napari-cosynth's own modules, the rest).

Prints JSON (medians and every run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LAYOUT = "x,y,class\n20,30,1\n60,70,2\n100,40,3\n90,100,4\n30,100,2\n64,20,3\n"

PHASES = r'''
import json, sys, time
marks = [("start", time.perf_counter())]
def mark(name): marks.append((name, time.perf_counter()))
import torch; mark("import torch")
torch.set_num_threads(1)
import gc
pause = sys.argv[3] == "paused"  # the collector off during the diffusers and open_clip imports
if pause: gc.disable()
import diffusers.utils; mark("import diffusers.utils (incl. torch._dynamo)")
from diffusers import UNet2DConditionModel, DDPMScheduler, UniPCMultistepScheduler; mark("import UNet and scheduler classes")
import open_clip.transformer; mark("import open_clip (incl. timm)")
if pause: gc.freeze(); gc.unfreeze(); gc.enable()  # as engine/heavy_imports.py does
import napari_cosynth.cli.main
from napari_cosynth import CoSynthPipeline
from napari_cosynth.data.folder import write_sample
from napari_cosynth.data.points_csv import read_points_csv; mark("import napari_cosynth")
pipe = CoSynthPipeline.from_pretrained("default"); mark("load the model")
points = read_points_csv(sys.argv[1], pipe.vocabulary)
(pair,) = pipe(points, size=(128, 128), seed=1); mark("draw the pair")
write_sample(pair, sys.argv[2], name=pair.name); mark("write the pair")
print(json.dumps({b[0]: round(b[1] - a[1], 3) for a, b in zip(marks, marks[1:])}))
'''


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["COSYNTH_THREADS"] = "1"
    return env


def _generate_cmd(points: Path, out: Path, model: str = "default") -> list[str]:
    return [sys.executable, "-m", "napari_cosynth.cli", "generate", "--model", model, "--points", str(points),
            "--size", "128", "128", "--seed", "1", "--device", "cpu", "--out", str(out), "--quiet"]


def _wall(cmd: list[str], check: bool = True) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=_env(), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 3)


def importtime_split(stderr: str) -> dict:
    """Seconds of ``-X importtime`` output by the package that pulled each module in.

    The output lists modules in post-order with their nesting depth; every module's own time goes to
    the innermost named group among its ancestors (itself included).
    """
    groups = [("torch._dynamo", "torch._dynamo (pulled in by diffusers)"), ("open_clip", "open_clip and timm"),
              ("diffusers", "diffusers"), ("scipy", "scipy"), ("napari_cosynth", "napari_cosynth (and skimage etc. it imports)"),
              ("torch", "torch")]
    nodes, pending = [], []  # (name, self_us, depth, children)
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", line)
        if not m:
            continue
        depth = len(m.group(2))
        children = []
        while pending and pending[-1][2] > depth:
            children.insert(0, pending.pop())
        node = (m.group(3), int(m.group(1)), depth, children)
        pending.append(node)
        nodes.append(node)
    totals: dict[str, float] = {}

    def walk(node, group):
        name = node[0]
        for prefix, label in groups:
            if name == prefix or name.startswith(prefix + "."):
                # torch's own submodules imported under diffusers stay torch's unless they are dynamo's
                if not (prefix == "torch" and group not in (None, "torch")):
                    group = label
                break
        key = group or "other"
        totals[key] = totals.get(key, 0.0) + node[1] / 1e6
        for child in node[3]:
            walk(child, group)

    for node in pending:  # the roots
        walk(node, None)
    totals = {k: round(v, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}
    return {"total": round(sum(totals.values()), 3), **totals}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args(argv)
    runs = {"generate": [], "phases": [], "phases_wall": [], "phases_gc_paused": [], "phases_gc_paused_wall": [],
            "pipeline_import": [], "bad_model": []}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        points = tmp / "points.csv"
        points.write_text(LAYOUT)
        for r in range(args.repeats):
            runs["generate"].append(_wall(_generate_cmd(points, tmp / f"gen-{r}")))
            for gc_mode, key in (("on", "phases"), ("paused", "phases_gc_paused")):
                start = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", PHASES, str(points), str(tmp / f"ph-{gc_mode}-{r}"),
                                      gc_mode], env=_env(), check=True, capture_output=True, text=True).stdout
                runs[key + "_wall"].append(round(time.perf_counter() - start, 3))
                runs[key].append(json.loads(out.strip().splitlines()[-1]))
            runs["pipeline_import"].append(_wall([sys.executable, "-c",
                                                  "import napari_cosynth.engine.pipeline.pipeline"]))
            runs["bad_model"].append(_wall(_generate_cmd(points, tmp / f"bad-{r}", "/no/such/model"), check=False))
            print(json.dumps({"repeat": r, "generate": runs["generate"][-1], "phases": runs["phases"][-1]}),
                  file=sys.stderr)
        split = None
        if args.importtime:
            done = subprocess.run([sys.executable, "-X", "importtime", *_generate_cmd(points, tmp / "it")[1:]],
                                  env=_env(), check=True, capture_output=True, text=True)
            split = importtime_split(done.stderr)
    median = {k: float(np.median(v)) for k, v in runs.items() if not k.startswith("phases")}
    for key in ("phases", "phases_gc_paused"):
        median[key] = {k: float(np.median([p[k] for p in runs[key]])) for k in runs[key][0]}
        median[key]["exit (wall minus the phases)"] = float(np.median(
            [w - sum(p.values()) for w, p in zip(runs[key + "_wall"], runs[key])]))
    print(json.dumps({"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
                      "median": median, "importtime_split": split, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
