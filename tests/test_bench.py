"""python -m cfme.bench writes bench.json with every timing of the speed issue."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ["setup_s", "sample_epoch_s", "floor_step_s", "full_step_s", "legcf_step_s",
        "cfme_step_s", "pyg_step_s", "stage1_init_s", "stage2_init_s", "val_pass_s",
        "peak_rss_mb"]


def test_bench_writes_all_timings(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cfme.bench", "data.synthetic.num_users=150",
         "data.synthetic.num_items=200", "data.synthetic.num_clusters=5", "budget=tiny",
         "model.dim=16", "model.fine.net.k_pca=8", "bench.repeats=1", "bench.warmup=0",
         "bench.batch_size=512", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "bench.json").read_text())
    for key in KEYS:
        assert out[key] > 0, key
    assert set(out["assign_update_s"]) == {"stage1", "stage2"}
    assert out["settings"]["batch_size"] == 512 and out["settings"]["num_users"] == 150
    assert out["ratios"]["cfme_over_floor"] == out["cfme_step_s"] / out["floor_step_s"]
    mem = out["memory"]
    assert mem["full"]["memory/ratio_to_full"] == 1.0
    assert mem["legcf"]["memory/coarse_codebook_params"] == 16 * 16
    # the models are timed and counted as configured: the per-entity bias is on by default
    assert mem["legcf"]["memory/bias_params"] == 150 + 200 + 1
    assert mem["cfme_at_init"]["memory/bias_params"] == 150 + 200 + 1
