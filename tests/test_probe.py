"""python -m cfme.probe: validation around each stage-1 re-solve, written to probe.json."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["data.synthetic.num_users=150", "data.synthetic.num_items=200",
        "data.synthetic.num_clusters=5", "budget=tiny", "model.dim=16", "probe.batch_size=1024"]


def run_probe(args, run_dir):
    return subprocess.run([sys.executable, "-m", "cfme.probe", *TINY, *args,
                           f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_probe_records_each_resolve(tmp_path):
    proc = run_probe(["probe.fixed_steps=4", "probe.cycles=2", "probe.steps=3"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "probe.json").read_text())
    events = [h["event"] for h in out["history"]]
    assert events == ["fixed", "re-solve 1", "trained after re-solve 1", "re-solve 2",
                      "trained after re-solve 2"]
    assert [h["steps"] for h in out["history"]] == [4, 4, 7, 7, 10]
    # METIS init rows are (w*, 1 - w*): mean 0.5; a least-squares re-solve changes them
    assert abs(out["history"][0]["s_value_mean"] - 0.5) < 1e-6
    assert out["history"][1]["s_value_mean"] != out["history"][0]["s_value_mean"]
    assert all(0 <= h["val/recall@20"] <= 1 for h in out["history"])
    assert out["settings"]["bias"] is True  # the model default


def test_probe_refuses_checkpoint_of_other_bias(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, WANDB_MODE="offline")
    train = subprocess.run(
        [sys.executable, "-m", "cfme.run", "model=legcf", *TINY[:5], "model.coarse.max_epochs=1",
         "eval.every=1", "logger=none", f"hydra.run.dir={run}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    ckpt = run / "checkpoints" / "coarse-fixed-best.ckpt"
    proc = run_probe([f"probe.checkpoint={ckpt}", "model.bias=false", "probe.cycles=1",
                      "probe.steps=1"], tmp_path / "probe")
    assert proc.returncode != 0 and "model.bias" in proc.stderr
    other = run_probe([f"probe.checkpoint={ckpt}", "data.synthetic.num_users=160",
                       "probe.cycles=1", "probe.steps=1"], tmp_path / "other")
    assert other.returncode != 0 and "probe.checkpoint=" in other.stderr
    assert "checkpoint is of" in other.stderr
    # the checkpoint replaces the fixed phase: validation starts from its S (METIS, mean 0.5)
    ok = run_probe([f"probe.checkpoint={ckpt}", "probe.cycles=1", "probe.steps=1"],
                   tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr[-3000:]
    out = json.loads((tmp_path / "ok" / "probe.json").read_text())
    history = out["history"]
    assert [(h["event"], h["steps"]) for h in history] == [
        ("checkpoint", 0), ("re-solve 1", 0), ("trained after re-solve 1", 1)]
    assert out["settings"]["optimizer_from_checkpoint"] is True
    # a fresh Adam moves every codebook entry by lr on its first step; the run's own moments
    # (kept by default) move it otherwise
    fresh = run_probe([f"probe.checkpoint={ckpt}", "probe.cycles=1", "probe.steps=1",
                       "probe.keep_optimizer=false"], tmp_path / "fresh")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    fresh_out = json.loads((tmp_path / "fresh" / "probe.json").read_text())
    assert fresh_out["settings"]["optimizer_from_checkpoint"] is False
    assert fresh_out["history"][1]["s_value_mean"] == history[1]["s_value_mean"]  # same start
    assert fresh_out["history"][2]["codebook_abs_mean"] != history[2]["codebook_abs_mean"]


def test_probe_validates_every_k_cycles_and_logs_as_it_goes(tmp_path):
    proc = run_probe(["probe.fixed_steps=2", "probe.cycles=3", "probe.steps=2",
                      "probe.validate_every=2", "probe.validate_resolve=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "probe.json").read_text())
    # every 2nd cycle and the last one, only after training
    assert [(h["event"], h["steps"]) for h in out["history"]] == [
        ("fixed", 2), ("trained after re-solve 2", 6), ("trained after re-solve 3", 8)]
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == out["history"]
    bad = run_probe(["probe.validate_every=0"], tmp_path / "bad")
    assert bad.returncode != 0 and "probe.validate_every=0" in bad.stderr


def test_probe_keeps_its_best_state_as_a_stage1_checkpoint(tmp_path):
    first = run_probe(["probe.fixed_steps=3", "probe.cycles=3", "probe.steps=2",
                       "probe.validate_resolve=false"], tmp_path / "first")
    assert first.returncode == 0, first.stderr[-3000:]
    history = json.loads((tmp_path / "first" / "probe.json").read_text())["history"]
    trained = [h for h in history if h["event"].startswith("trained")]
    best = max(trained, key=lambda h: h["val/ndcg@5"])
    assert (tmp_path / "first" / "checkpoints" / "coarse-update-best.ckpt").is_file()
    # the run directory is a stage-1 source, as for model.init_from: the reload validates
    # exactly as the best state did
    again = run_probe([f"probe.checkpoint={tmp_path / 'first'}", "probe.cycles=1",
                       "probe.steps=1"], tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:]
    start = json.loads((tmp_path / "again" / "probe.json").read_text())["history"][0]
    assert start["event"] == "checkpoint"
    for key in ("val/recall@20", "val/ndcg@5", "s_value_mean", "codebook_abs_mean"):
        assert start[key] == best[key], key
