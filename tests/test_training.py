"""Training end to end: CLI runs, learnability, checkpoint reload, stage-2 from a stage-1 run."""

import csv
import json
import os
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from cfme.data import InteractionDataModule
from cfme.embeddings import CoarseMetaEmbedding
from cfme.metrics import RankingEvaluator
from cfme.module import RecommenderModule
from cfme.run import resume_config
from cfme.train import load_resumable, load_stage_state, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "data.synthetic.num_users=150", "data.synthetic.num_items=200",
    "data.synthetic.num_clusters=5", "budget=tiny", "model.dim=16", "eval.every=1",
    "logger=csv",
]
TINY_COARSE = ["model.coarse.patience=1", "model.coarse.max_epochs=4"]
TINY_FINE = ["model.fine.patience=1", "model.fine.max_epochs=4", "model.fine.net.k_pca=8"]


def run_cli(args, run_dir, check=True):
    env = dict(os.environ, WANDB_SILENT="true", WANDB_MODE="offline")
    proc = subprocess.run([sys.executable, "-m", "cfme.run", *args, f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def compose_cfg(overrides, run_dir):
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"hydra.run.dir={run_dir}"],
                      return_hydra_config=True)
    cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def test_cfme_end_to_end_cli(tmp_path):
    run_cli(["model=cfme", *TINY, *TINY_COARSE, *TINY_FINE, "eval.save_topk=true"], tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["stages"]) == {"coarse", "fine"}
    for k in (5, 10, 20, 50):
        assert 0.0 <= metrics["test"][f"test/recall@{k}"] <= 1.0
        assert 0.0 <= metrics["test"][f"test/ndcg@{k}"] <= 1.0
    assert metrics["test"]["test/recall@50"] >= metrics["test"]["test/recall@5"]
    assert "val/ndcg@5" in metrics["val"]
    mem = metrics["memory"]
    assert mem["memory/coarse_codebook_params"] == 16 * 16
    assert mem["memory/T_indices_params"] == 16 * 4
    assert 0 < mem["memory/ratio_to_full"] < 1
    for key in ("setup_s", "fit_s", "val_s", "test_s", "total_s"):
        assert metrics["time"][key] >= 0
    assert os.path.isfile(metrics["stages"]["coarse"]["checkpoint"])
    assert (tmp_path / "config.yaml").is_file()
    assert "eval.save_topk=true" in (tmp_path / ".hydra" / "overrides.yaml").read_text()
    top = np.load(tmp_path / "topk_test_fine.npz")
    assert top["items"].shape[1] == 50 and len(top["users"]) == top["items"].shape[0]
    history = metrics["stages"]["coarse"]["history"]
    assert {h["phase"] for h in history} == {"fixed", "update"}
    assert metrics["stages"]["coarse"]["assign_updates"] >= 1


def test_full_mf_cli_with_wandb_offline(tmp_path):
    run_cli(["model=full", "backbone=mf", *TINY, "logger=wandb", "model.full.max_epochs=2",
             "model.full.patience=1"], tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["stages"]) == {"full"}
    assert metrics["memory"]["memory/ratio_to_full"] == 1.0
    assert any((tmp_path / "wandb").iterdir())


def test_stage_two_from_stage_one_run_and_refusals(tmp_path):
    stage1 = tmp_path / "s1"
    run_cli(["model=legcf", *TINY, *TINY_COARSE], stage1)
    stage2 = tmp_path / "s2"
    run_cli(["model=cfme", *TINY, *TINY_COARSE, *TINY_FINE, f"model.init_from={stage1}"], stage2)
    metrics = json.loads((stage2 / "metrics.json").read_text())
    assert set(metrics["stages"]) == {"fine"}
    s1 = torch.load(json.loads((stage1 / "metrics.json").read_text())["stages"]["coarse"]
                    ["checkpoint"], weights_only=False)["state_dict"]
    s2 = torch.load(metrics["stages"]["fine"]["checkpoint"], weights_only=False)["state_dict"]
    assert torch.equal(s1["net.codebook"], s2["net.codebook"])  # C and S bit-identical
    assert torch.equal(s1["net.s_index"], s2["net.s_index"])
    assert torch.equal(s1["net.s_value"], s2["net.s_value"])
    # a stage-1 run of another dataset size is refused before training
    bad = run_cli(["model=cfme", *TINY, *TINY_COARSE, *TINY_FINE, "data.synthetic.num_users=160",
                   f"model.init_from={stage1}"], tmp_path / "s3", check=False)
    assert bad.returncode != 0 and "model.init_from" in bad.stderr
    # S rows are internal ids: a stage-1 run under another node order is refused, with the fix
    other = run_cli(["model=cfme", *TINY, *TINY_COARSE, *TINY_FINE, "data.reorder=rcm",
                     f"model.init_from={stage1}"], tmp_path / "s4", check=False)
    assert other.returncode != 0 and "data.reorder=metis" in other.stderr


@pytest.mark.parametrize("override, setting", [
    ("sparsity.t=20", "t=20"), ("sparsity.k=9", "k=9"), ("model.fine.net.k_pca=99", "k_pca"),
    ("model.fine.net.bridge=1.5", "bridge"), ("sparsity.soft_threshold=-1", "soft_threshold"),
])
def test_contradictory_settings_refused_before_training(tmp_path, override, setting):
    proc = run_cli(["model=cfme", *TINY, *TINY_COARSE, *TINY_FINE, override], tmp_path, check=False)
    assert proc.returncode != 0
    assert setting in proc.stderr
    assert "invalid settings" in proc.stderr
    assert not (tmp_path / "checkpoints").exists()  # refused before any training


@pytest.mark.parametrize("stage, hook, epoch, move", [
    ("coarse", "on_train_epoch_start", 2, False),  # mid stage 1
    ("fine", "on_train_epoch_start", 1, False),  # mid stage 2, stage 1 finished
    ("coarse", "on_test_epoch_start", None, False),  # after stage 1's fit, in its test pass
    ("fine", "on_train_epoch_start", 1, True),  # mid stage 2, then the run directory moved
])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, stage, hook, epoch,
                                                    move):
    # stage 1 ends by early stopping (epoch 5), not by its epoch cap
    args = ["model=cfme", *TINY, "model.coarse.patience=1", "model.coarse.max_epochs=12",
            *TINY_FINE]
    straight = train(compose_cfg(args, tmp_path / "a"), str(tmp_path / "a"))
    cut = tmp_path / "b"
    original = getattr(RecommenderModule, hook)

    def power_cut(self):
        if self.stage == stage and epoch in (None, self.current_epoch):
            raise RuntimeError("power cut")
        original(self)

    monkeypatch.setattr(RecommenderModule, hook, power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        train(compose_cfg(args, cut), str(cut))
    assert not (cut / "metrics.json").exists()
    assert (cut / "checkpoints" / f"{stage}-last.ckpt").exists()
    # a fresh run must not train over the interrupted one
    with pytest.raises(ValueError, match="resume="):
        train(compose_cfg(args, cut), str(cut))
    monkeypatch.setattr(RecommenderModule, hook, original)
    if move:  # e.g. copied off a cluster: every path the run kept pointed at its old place
        started_in, cut = cut, tmp_path / "moved" / "b"
        os.makedirs(cut.parent)
        os.rename(started_in, cut)
    first_log = (cut / "csv" / "metrics.csv").read_text()
    resumed = train(load_resumable(str(cut)), str(cut), resume=True)
    if move:
        assert not started_in.exists()  # nothing written where the run used to be
        for name in ("coarse", "fine"):
            assert resumed["stages"][name]["checkpoint"].startswith(str(cut) + os.sep)
    assert (cut / "csv" / "metrics.csv").read_text() == first_log  # nothing overwritten
    # a real continuation: the resumed part starts past the first step (or trains no more)
    with open(cut / "csv" / "resume-1" / "metrics.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("step")]
    assert steps and steps[0] > 0  # the cut stage goes on from its step, not from 0
    # same early-stopping history, same S/T, same metrics as the run that was never cut
    assert resumed["stages"][stage]["resumed_from"].endswith(f"{stage}-last.ckpt")
    for name in ("coarse", "fine"):
        assert resumed["stages"][name]["history"] == straight["stages"][name]["history"]
        assert resumed["stages"][name]["epochs"] == straight["stages"][name]["epochs"]
        # counted over the whole stage, not only the resumed part
        assert resumed["stages"][name]["assign_updates"] == straight["stages"][name]["assign_updates"]
    assert resumed["test"] == straight["test"]
    a = torch.load(straight["stages"]["fine"]["checkpoint"], weights_only=False)["state_dict"]
    b = torch.load(resumed["stages"]["fine"]["checkpoint"], weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="already finished"):
        train(load_resumable(str(cut)), str(cut), resume=True)


def test_cli_resume_logs_into_the_run(tmp_path, monkeypatch):
    args = ["model=legcf", *TINY, *TINY_COARSE]
    cut = tmp_path / "run"
    original = RecommenderModule.on_train_epoch_start

    def power_cut(self):
        if self.current_epoch == 1:
            raise RuntimeError("power cut")
        original(self)

    monkeypatch.setattr(RecommenderModule, "on_train_epoch_start", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        train(compose_cfg(args, cut), str(cut))
    (cut / "run.log").write_text("earlier lines\n")
    record = {f: f"the run's own {f}\n" for f in ("config.yaml", "hydra.yaml", "overrides.yaml")}
    (cut / ".hydra").mkdir()
    for name, text in record.items():
        (cut / ".hydra" / name).write_text(text)

    def record_kept():
        return {f: (cut / ".hydra" / f).read_text() for f in record} == record

    # hydra.run.dir=<the run> too; where it runs may change, the run's config.yaml stays
    run_cli([f"resume={cut}", "trainer.accelerator=cpu", "threads=1"], cut)
    assert (cut / "metrics.json").exists()
    log_text = (cut / "run.log").read_text()
    assert log_text.startswith("earlier lines\n")  # appended, not overwritten
    assert "resuming the run in" in log_text and "resume: stage coarse" in log_text
    assert "with trainer.accelerator=cpu threads=1 for this part" in log_text
    part = OmegaConf.load(cut / "csv" / "resume-1" / "hparams.yaml")
    assert (part.trainer.accelerator, part.threads) == ("cpu", 1)
    saved = OmegaConf.load(cut / "config.yaml")
    assert (saved.trainer.accelerator, saved.threads) == ("auto", None)
    assert record_kept()  # Hydra's record of this call did not replace the run's
    # resuming from elsewhere: the log goes to the run, Hydra's own directory is removed
    stray = tmp_path / "hydra-dir"
    proc = run_cli([f"resume={cut}"], stray, check=False)
    assert proc.returncode != 0 and "already finished" in proc.stderr
    assert (cut / "run.log").read_text().count("resuming the run in") == 2
    assert not stray.exists()  # it held only Hydra's own files
    # a directory with anything else in it is kept
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    proc = run_cli([f"resume={cut}"], keep, check=False)
    assert proc.returncode != 0 and "already finished" in proc.stderr
    assert (keep / "notes.txt").read_text() == "mine"
    # a new run refused in the finished run's directory leaves its record too
    proc = run_cli(args, cut, check=False)
    assert proc.returncode != 0 and "holds a finished run" in proc.stderr
    assert record_kept()


def test_resume_needs_an_interrupted_run(tmp_path):
    args = ["model=legcf", *TINY, *TINY_COARSE]
    cfg = compose_cfg(args, tmp_path)
    with pytest.raises(ValueError, match="nothing to continue from"):
        train(cfg, str(tmp_path), resume=True)


def test_update_phase_learning_rate(tmp_path):
    args = ["model=legcf", *TINY, *TINY_COARSE, "model.coarse.update.lr=0.0123"]
    out = train(compose_cfg(args, tmp_path), str(tmp_path))
    assert out["stages"]["coarse"]["phases"]["update"] is not None  # the update phase ran
    ckpt = torch.load(tmp_path / "checkpoints" / "coarse-last.ckpt", weights_only=False)
    assert ckpt["cfme"]["phase"] == "update"
    assert [g["lr"] for g in ckpt["optimizer_states"][0]["param_groups"]] == [0.0123]
    fixed = torch.load(tmp_path / "checkpoints" / "coarse-fixed-best.ckpt", weights_only=False)
    assert [g["lr"] for g in fixed["optimizer_states"][0]["param_groups"]] == [1e-3]


def test_resume_refuses_other_overrides(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    proc = run_cli([f"resume={tmp_path}", "model.dim=8"], tmp_path / "new", check=False)
    assert proc.returncode != 0 and "model.dim=8" in proc.stderr
    assert "trainer.accelerator" in proc.stderr  # what may change instead
    missing = run_cli([f"resume={tmp_path / 'nowhere'}"], tmp_path / "new2", check=False)
    assert missing.returncode != 0 and "no config.yaml" in missing.stderr


def test_resume_takes_only_where_it_runs_from_the_command_line(tmp_path):
    saved = {"seed": 3, "threads": None,
             "trainer": {"accelerator": "gpu", "devices": 1, "max_epochs": 7}}
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    cli = OmegaConf.create({"seed": 0, "threads": 1,
                            "trainer": {"accelerator": "cpu", "devices": 2, "max_epochs": 9}})
    cfg = resume_config(str(tmp_path), cli, ["trainer.accelerator=cpu", "threads=1"])
    assert (cfg.trainer.accelerator, cfg.threads) == ("cpu", 1)
    # everything not overridden is the run's own, and its record is left as it was
    assert (cfg.seed, cfg.trainer.devices, cfg.trainer.max_epochs) == (3, 1, 7)
    assert OmegaConf.load(tmp_path / "config.yaml").trainer.accelerator == "gpu"
    cfg = resume_config(str(tmp_path), cli, ["trainer.devices=2"])
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("gpu", 2)
    with pytest.raises(ValueError, match="trainer.max_epochs=9"):
        resume_config(str(tmp_path), cli, ["trainer.accelerator=cpu", "trainer.max_epochs=9"])


def test_stage1_checkpoint_reload_gives_identical_validation(tmp_path):
    L.seed_everything(0)
    dm = InteractionDataModule("synthetic", synthetic=dict(num_users=150, num_items=200,
                                                           num_clusters=5), batch_size=2048)
    dm.setup()
    net = CoarseMetaEmbedding(dm.graph, dim=16, num_layers=2, num_coarse=8, t=2)
    module = RecommenderModule(net, lr=1e-2, stage="coarse")
    module.enter_phase("update")
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, inference_mode=False, num_sanity_val_steps=0)
    trainer.fit(module, dm)
    assert module.assign_updates == 2
    path = tmp_path / "s1.ckpt"
    trainer.save_checkpoint(path)
    before = trainer.validate(module, dm, verbose=False)[0]
    fresh = RecommenderModule(CoarseMetaEmbedding(dm.graph, dim=16, num_layers=2, num_coarse=8,
                                                  t=2, seed=5), stage="coarse")
    after = L.Trainer(logger=False, enable_progress_bar=False, inference_mode=False).validate(
        fresh, dm, ckpt_path=path, verbose=False, weights_only=False)[0]
    before = {k: v for k, v in before.items() if k.startswith("val/")}
    assert before and before == {k: v for k, v in after.items() if k.startswith("val/")}
    assert torch.equal(fresh.net.s_index, net.s_index)
    assert fresh.phase == "update"


def popularity_metrics(dm):
    popularity = torch.from_numpy(np.bincount(dm.train.indices, minlength=dm.num_items)).float()
    ev = RankingEvaluator((20,))
    for batch in dm.test_dataloader():
        scores = popularity.repeat(len(batch["users"]), 1)
        ev.update(scores, batch["mask_index"], batch["label_index"])
    return ev.compute()


@pytest.mark.slow
def test_lightgcn_beats_popularity_on_synthetic(tmp_path):
    cfg = compose_cfg(["model=full", "logger=none", "model.dim=32", "model.full.lr=0.01",
                       "model.full.max_epochs=15", "eval.every=5"], tmp_path)
    results = train(cfg, str(tmp_path))
    dm = InteractionDataModule("synthetic", synthetic=dict(cfg.data.synthetic))
    dm.setup()
    pop = popularity_metrics(dm)
    assert results["test"]["test/recall@20"] > 1.5 * pop["recall@20"], (results["test"], pop)
    assert results["test"]["test/ndcg@20"] > 1.5 * pop["ndcg@20"], (results["test"], pop)


def test_checkpoint_node_order_is_checked(tmp_path, caplog):
    run = tmp_path / "run"
    train(compose_cfg(["model=legcf", *TINY, *TINY_COARSE, "data.reorder=false"], run), str(run))
    ckpt_path = run / "checkpoints" / "coarse-fixed-best.ckpt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    assert ckpt["cfme"]["reorder"] == "none" and len(ckpt["cfme"]["order_digest"]) == 16
    assert ckpt["cfme"]["split"] == {"method": "default", "seed": 2024}

    def datamodule(reorder, **split):
        dm = InteractionDataModule("synthetic", synthetic=dict(num_users=150, num_items=200,
                                                               num_clusters=5), reorder=reorder,
                                   **split)
        dm.setup()
        return dm

    # stage 2 on another split than stage 1's loads, with a warning naming both splits
    with caplog.at_level("WARNING", logger="cfme.train"):
        load_stage_state(str(ckpt_path), datamodule(False))
        assert "split" not in caplog.text
        load_stage_state(str(ckpt_path), datamodule(False, split_method="authors",
                                                     split_seed=2025))
    assert "'method': 'default', 'seed': 2024" in caplog.text
    assert "'method': 'authors', 'seed': 2025" in caplog.text
    # a checkpoint from before checkpoints recorded the split: its run's config.yaml says it
    # (a config from before data.split_method existed means the default draw)
    config = OmegaConf.load(run / "config.yaml")
    del config.data["split_method"]
    OmegaConf.save(config, run / "config.yaml")
    old = dict(ckpt, cfme={k: v for k, v in ckpt["cfme"].items() if k != "split"})
    old_path = run / "checkpoints" / "old.ckpt"
    torch.save(old, old_path)
    caplog.clear()
    with caplog.at_level("WARNING", logger="cfme.train"):
        load_stage_state(str(old_path), datamodule(False, split_seed=2025))
    assert "'method': 'default', 'seed': 2024" in caplog.text
    assert "'method': 'default', 'seed': 2025" in caplog.text

    # a checkpoint from before the order was recorded: the order is read from its run's config
    del ckpt["cfme"]["reorder"], ckpt["cfme"]["order_digest"]
    torch.save(ckpt, ckpt_path)
    assert load_stage_state(str(ckpt_path), datamodule(False))["s_index"].shape[0] == 350
    with pytest.raises(ValueError, match="data.reorder=none"):
        load_stage_state(str(ckpt_path), datamodule("metis"))
    # same name of order, other permutation (e.g. another METIS build): refused, not mismatched
    ckpt["cfme"].update(reorder="none", order_digest="0" * 16)
    torch.save(ckpt, ckpt_path)
    with pytest.raises(ValueError, match="node order differs"):
        load_stage_state(str(ckpt_path), datamodule(False))


def test_resumable_config_follows_a_moved_run(tmp_path):
    new = tmp_path / "here" / "run-7"
    new.mkdir(parents=True)
    # a run from before run_dir was recorded: its loggers wrote into the run directory
    (new / "config.yaml").write_text(
        "seed: 0\nlogger:\n  save_dir: /cluster/scratch/run-7\npaths:\n  other: /data/x\n")
    cfg = load_resumable(str(new))
    assert cfg.logger.save_dir == str(new) and cfg.paths.other == "/data/x"
    (new / "config.yaml").write_text(
        "seed: 0\nrun_dir: /cluster/scratch/run-7\nlogger:\n  save_dir: /logs/elsewhere\n"
        "extra: /cluster/scratch/run-7/checkpoints/a.ckpt\n")
    cfg = load_resumable(str(new))
    assert "run_dir" not in cfg and cfg.logger.save_dir == "/logs/elsewhere"
    assert cfg.extra == str(new / "checkpoints" / "a.ckpt")


def test_resume_refuses_a_checkpoint_of_another_node_order(tmp_path):
    run = tmp_path / "run"
    train(compose_cfg(["model=legcf", *TINY, *TINY_COARSE], run), str(run))
    last = run / "checkpoints" / "coarse-last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    ckpt["cfme"]["order_digest"] = "0" * 16  # as if METIS ordered the nodes differently here
    torch.save(ckpt, last)
    os.remove(run / "metrics.json")
    os.remove(run / "progress.json")
    with pytest.raises(ValueError, match="node order differs"):
        train(load_resumable(str(run)), str(run), resume=True)


def test_phase_patience_counts_per_phase(tmp_path):
    from types import SimpleNamespace

    from cfme.callbacks import PhaseSchedule
    schedule = PhaseSchedule(("fixed", "update"), str(tmp_path), "coarse", patience=1,
                             phase_patience={"update": 3})
    entered, stopped = [], []
    module = SimpleNamespace(enter_phase=entered.append)
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, global_step=0, logger=None,
                              should_stop=False, save_checkpoint=lambda path: None)
    # fixed: best, then one worse validation ends it; update: best, then three worse
    for value in [0.5, 0.4, 0.3, 0.2, 0.2, 0.1]:
        trainer.callback_metrics = {"val/ndcg@5": torch.tensor(value)}
        schedule.on_validation_end(trainer, module)
        stopped.append(trainer.should_stop)
        trainer.current_epoch += 1
    # with the stage's patience (1) the update phase would have stopped at its first worse value
    assert entered == ["update"] and stopped == [False] * 5 + [True]
    assert [h["phase"] for h in schedule.history] == ["fixed", "fixed", "update", "update",
                                                      "update", "update"]
    with pytest.raises(ValueError, match="update"):
        PhaseSchedule(("fixed", "update"), str(tmp_path), "coarse", phase_patience={"update": 0})
    cfg = compose_cfg(["model=legcf", *TINY, *TINY_COARSE, "model.coarse.update.patience=0"],
                      tmp_path)
    with pytest.raises(ValueError, match="model.coarse.update.patience=0"):
        train(cfg, str(tmp_path / "run"))


def test_the_split_does_not_touch_training(tmp_path):
    # while no phase changes, runs on two splits train the same model: only validation differs
    args = ["model=legcf", *TINY, "model.coarse.patience=50", "model.coarse.max_epochs=3"]
    runs = {}
    for method in ("default", "authors"):
        run = tmp_path / method
        train(compose_cfg([*args, f"data.split_method={method}"], run), str(run))
        with open(run / "csv" / "metrics.csv") as fh:
            val = [r["val/ndcg@20"] for r in csv.DictReader(fh) if r.get("val/ndcg@20")]
        state = torch.load(run / "checkpoints" / "coarse-last.ckpt",
                           weights_only=False)["state_dict"]
        runs[method] = val, state
    (val_a, state_a), (val_b, state_b) = runs["default"], runs["authors"]
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert len(val_a) == 3 and val_a != val_b
