"""The sweep definitions in sweeps/ launch Hydra multiruns that each write metrics.json."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEPS = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "sweeps")) if f.endswith(".yaml"))
TINY = ["data.synthetic.num_users=120", "data.synthetic.num_items=160",
        "data.synthetic.num_clusters=4", "budget=tiny", "model.dim=16", "eval.every=1",
        "logger=none", "++model.full.max_epochs=1", "++model.coarse.max_epochs=2",
        "++model.coarse.patience=1", "++model.fine.max_epochs=1", "++model.fine.net.k_pca=8"]


def hydra_cmd(*args):
    return subprocess.run([sys.executable, "-m", "cfme.run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_definition_composes(sweep):
    proc = hydra_cmd("-cd", "sweeps", "-cn", sweep, "--cfg", "hydra")
    assert proc.returncode == 0, proc.stderr
    assert "params:" in proc.stdout and "mode: MULTIRUN" in proc.stdout


def test_backbone_sweep_runs_jobs(tmp_path):
    proc = hydra_cmd("-cd", "sweeps", "-cn", "backbone", "model=full,legcf", "backbone=mf",
                     *TINY, f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 2
    models = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert "test/recall@20" in metrics["test"]
        models.add(tuple(metrics["stages"]))
    assert models == {("full",), ("coarse",)}
