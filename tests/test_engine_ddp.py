"""Two training processes under torchrun (gloo, CPU) keep identical weights, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from safetensors.torch import load_file

from napari_cosynth.engine.training.state import load_training_state
from test_engine_train import tiny_config, write_tiny_consep

WORKER = textwrap.dedent(
    """
    import json, sys
    from safetensors.torch import save_file
    from napari_cosynth.engine.config import CosynthConfig
    from napari_cosynth.engine.training.train import Trainer

    config = CosynthConfig.from_dict(json.loads(open(sys.argv[1]).read()))
    out, dump = sys.argv[2], sys.argv[3]
    trainer = Trainer(config, out)
    rank, world = trainer.ctx.rank, trainer.ctx.world_size
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    steps = [p.step for p in trainer.run()]
    weights = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(weights, f"{dump}/rank{rank}.safetensors")
    changed = any(not (weights[k] == initial[k]).all() for k in weights)
    report = {"world": world, "steps": steps, "changed": changed}
    open(f"{dump}/rank{rank}.json", "w").write(json.dumps(report))
    """
)


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_weights(tmp_path):
    data = write_tiny_consep(tmp_path / "data", n=4, size=48)
    config = tiny_config(data, steps=3, batch_size=1, checkpoint_every=2)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config.to_dict()))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
           str(script), str(cfg), str(out), str(dump)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    reports = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["steps"] == [1, 2, 3] and r["changed"] for r in reports)
    w0, w1 = (load_file(dump / f"rank{r}.safetensors") for r in (0, 1))
    assert w0.keys() == w1.keys()
    for key in w0:
        assert (w0[key] == w1[key]).all(), f"{key} differs between the ranks"
    # Only rank 0 wrote: one header and one row per step, checkpoints at steps 2 and 3.
    rows = (out / "loss.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "1", "2", "3"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000003"]
    state = load_training_state(out / "checkpoints" / "step-0000003")
    assert state["data"]["world_size"] == 2 and state["data"]["global_batch"] == 2
    assert state["data"]["position"] == 6  # 3 steps of a global batch of 2 crops
