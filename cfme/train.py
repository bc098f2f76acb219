"""Run a model's stages (full | coarse | coarse then fine) and collect its results."""

from __future__ import annotations

import copy
import glob
import json
import logging
import os
import time

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from cfme.callbacks import PhaseSchedule
from cfme.data.datamodule import check_order_digest, normalize_reorder
from cfme.memory import memory_report
from cfme.module import UPDATE_FREQUENCIES, RecommenderModule

log = logging.getLogger(__name__)


def load_stage_state(path: str, datamodule, setting: str = "model.init_from") -> dict:
    """Stage-1 state (codebook, S, bias, Adam state) from a checkpoint file or a run directory.

    A run directory is searched for ``checkpoints/coarse-update-best.ckpt`` (else the
    fixed phase's). Refuses checkpoints of another dataset or size.
    """
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path):
        for phase in ("update", "fixed"):
            candidate = os.path.join(path, "checkpoints", f"coarse-{phase}-best.ckpt")
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            raise FileNotFoundError(f"{setting}={path}: no checkpoints/coarse-*-best.ckpt "
                                    f"in that run directory")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{setting}={path}: no such checkpoint")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    meta = ckpt.get("cfme", {})
    if meta.get("stage") != "coarse":
        raise ValueError(f"{setting}={path}: not a stage-1 (coarse) checkpoint "
                         f"(stage={meta.get('stage')!r})")
    want = {"dataset": datamodule.name, "num_users": datamodule.num_users,
            "num_items": datamodule.num_items, "reorder": datamodule.reorder}
    got = {k: meta.get(k) for k in want}
    if got["reorder"] is None:  # written before checkpoints recorded the node order
        got["reorder"] = _saved_reorder(path)
        if got["reorder"] is None:
            log.warning("%s=%s: the checkpoint does not say its node order and no config.yaml "
                        "of its run was found; assuming data.reorder=%s", setting, path,
                        datamodule.reorder)
            got["reorder"] = datamodule.reorder
    if got != want:
        hint = (f"; set data.reorder={got['reorder']} to reload it (S is indexed by internal "
                f"ids)" if got["reorder"] != want["reorder"] else "")
        raise ValueError(f"{setting}={path}: checkpoint is of {got}, this run is {want}{hint}")
    check_order_digest(meta, datamodule.order_digest, f"{setting}={path}")
    split = {"method": datamodule.split_method, "seed": datamodule.split_seed}
    saved_split = meta.get("split") or _saved_split(path)
    if saved_split not in (None, split):
        log.warning("%s=%s: stage 1 chose this checkpoint on the validation items of split %s, "
                    "this run validates and tests on split %s: some of its test items were "
                    "stage 1's validation items (never trained on; the published CFME runs "
                    "with seeds 2025 and 2026 ran this way)", setting, path, saved_split, split)
    state = ckpt["state_dict"]
    optimizers = ckpt.get("optimizer_states") or [None]
    return {"codebook": state["net.codebook"], "s_index": state["net.s_index"],
            "s_value": state["net.s_value"], "bias": state.get("net.bias"),
            "optimizer": optimizers[0]}


def checkpoint_meta(datamodule) -> dict:
    """Facts about the data a checkpoint records, so that reloads can be checked."""
    return {"dataset": datamodule.name, "num_users": datamodule.num_users,
            "num_items": datamodule.num_items, "reorder": datamodule.reorder,
            "order_digest": datamodule.order_digest,
            "split": {"method": datamodule.split_method, "seed": datamodule.split_seed}}


def _saved_data_config(ckpt_path: str):
    """The ``data`` node of the ``config.yaml`` of the run a checkpoint belongs to
    (``<run>/checkpoints/x.ckpt``); None without one."""
    config = os.path.join(os.path.dirname(os.path.dirname(ckpt_path)), "config.yaml")
    if not os.path.isfile(config):
        return None
    return OmegaConf.load(config).get("data", {})


def _saved_split(ckpt_path: str) -> dict | None:
    """``{"method", "seed"}`` of the split of a checkpoint's run, from its ``config.yaml``
    (checkpoints from before they recorded it); None without one."""
    data = _saved_data_config(ckpt_path)
    if data is None or data.get("split_seed") is None:
        return None
    # runs from before data.split_method existed drew the default split
    return {"method": data.get("split_method", "default"), "seed": int(data["split_seed"])}


def _saved_reorder(ckpt_path: str) -> str | None:
    """``data.reorder`` of the run a checkpoint belongs to, from its ``config.yaml``."""
    data = _saved_data_config(ckpt_path)
    if data is None:
        return None
    value = data.get("reorder")
    # runs from before data.reorder existed kept the files' order
    return "none" if value is None else normalize_reorder(value)


def coarse_state_of(net) -> dict:
    return {"codebook": net.codebook.detach(), "s_index": net.s_index, "s_value": net.s_value,
            "bias": None if net.bias is None else net.bias.detach()}


def _numeric(d: dict) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, (int, float))}


def check_settings(cfg: DictConfig) -> None:
    """Refuse contradictory settings before any data is read or training starts."""
    model = cfg.model
    problems = []
    stages = list(model.stages)
    if "coarse" in stages:
        net = model.coarse.net
        if not 1 <= net.t <= net.num_coarse:
            problems.append(f"model.coarse.net.t={net.t} (sparsity.t) must be between 1 and "
                            f"num_coarse={net.num_coarse} (budget.num_coarse)")
        if not 0 <= net.anchor_weight <= 1:
            problems.append(f"model.coarse.net.anchor_weight={net.anchor_weight} must be in [0, 1]")
    if "fine" in stages:
        net = model.fine.net
        if not 1 <= net.k <= net.num_fine:
            problems.append(f"model.fine.net.k={net.k} (sparsity.k) must be between 1 and "
                            f"num_fine={net.num_fine} (budget.num_fine)")
        if not 1 <= net.k_pca <= net.dim:
            problems.append(f"model.fine.net.k_pca={net.k_pca} must be between 1 and "
                            f"dim={net.dim} (model.dim)")
        if not 0 <= net.bridge <= 1:
            problems.append(f"model.fine.net.bridge={net.bridge} (g) must be in [0, 1]")
        if net.soft_threshold < 0:
            problems.append(f"model.fine.net.soft_threshold={net.soft_threshold} (λ, "
                            f"sparsity.soft_threshold) must be >= 0")
    for stage in stages:
        scfg = model[stage]
        update = scfg.get("update") or {}
        if update.get("frequency", "every_epoch") not in UPDATE_FREQUENCIES:
            problems.append(f"model.{stage}.update.frequency={update.get('frequency')!r} must "
                            f"be one of {', '.join(UPDATE_FREQUENCIES)}")
        for key in ("batch_size", "patience", "max_epochs"):
            if scfg[key] < 1:
                problems.append(f"model.{stage}.{key}={scfg[key]} must be >= 1")
        if scfg.lr <= 0:
            problems.append(f"model.{stage}.lr={scfg.lr} must be > 0")
        if update.get("patience") is not None and update.get("patience") < 1:
            problems.append(f"model.{stage}.update.patience={update.get('patience')} must be "
                            f">= 1 (or null: model.{stage}.patience)")
        if update.get("lr") is not None and update.get("lr") <= 0:
            problems.append(f"model.{stage}.update.lr={update.get('lr')} must be > 0 (or null)")
    if problems:
        raise ValueError("invalid settings:\n  " + "\n  ".join(problems))


PROGRESS_FILE = "progress.json"
RUN_DIR_KEY = "run_dir"  # saved in config.yaml: where the run started, to recognize a move


def load_resumable(run_dir: str) -> DictConfig:
    """The resolved config of an earlier run, to continue it with ``resume=<run dir>``.

    A run directory may have been moved or copied since it started: paths that pointed into
    its old location (the loggers' ``save_dir``) are pointed at ``run_dir``.
    """
    run_dir = os.path.abspath(os.path.expanduser(run_dir))
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"resume={run_dir}: no config.yaml there; give the directory "
                                f"of a run started by `python -m cfme.run`")
    saved = OmegaConf.to_container(OmegaConf.load(path))
    old = saved.pop(RUN_DIR_KEY, None)
    logger_dir = (saved.get("logger") or {}).get("save_dir")
    if old is None and logger_dir and os.path.basename(logger_dir) == os.path.basename(run_dir):
        old = logger_dir  # runs started before run_dir was recorded log into their run dir
    if old and old != run_dir:
        log.info("resume: the run was started in %s; paths in it now point to %s", old, run_dir)

        def move(value):
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            if isinstance(value, list):
                return [move(v) for v in value]
            if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
                return run_dir + value[len(old):]
            return value
        saved = move(saved)
    return OmegaConf.create(saved)


def _in_run_dir(path: str, directory: str) -> str:
    """``path``, a file that lives in ``directory``, located there (the run may have moved)."""
    return os.path.join(directory, os.path.basename(path))


def _write_atomic(path: str, text: str) -> None:
    """Write a temporary file, then rename it: a kill never leaves half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def run_state(run_dir: str) -> tuple[bool, bool]:
    """``(started, finished)`` of the run in ``run_dir``: whether it holds ``progress.json`` or
    ``checkpoints/*-last.ckpt``, and whether it holds ``metrics.json``."""
    started = (os.path.isfile(os.path.join(run_dir, PROGRESS_FILE))
               or bool(glob.glob(os.path.join(run_dir, "checkpoints", "*-last.ckpt"))))
    return started, os.path.isfile(os.path.join(run_dir, "metrics.json"))


def train(cfg: DictConfig, run_dir: str, resume: bool = False) -> dict:
    """Train every stage of ``cfg.model`` and write ``metrics.json`` into ``run_dir``.

    Each stage keeps ``checkpoints/<stage>-last.ckpt`` (model, S/T, phase, optimizer,
    early-stopping state) up to date at every epoch end and records its results in
    ``progress.json`` when it ends. With ``resume=True`` the run continues in ``run_dir``:
    finished stages are skipped and the running one restarts from its last epoch.

    Returns the metrics dict.
    """
    check_settings(cfg)
    start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)
    torch.set_num_threads(cfg.get("threads") or torch.get_num_threads())
    os.makedirs(run_dir, exist_ok=True)
    progress_path = os.path.join(run_dir, PROGRESS_FILE)
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    started, finished = run_state(run_dir)
    done: dict = {}
    if resume:
        if finished:
            raise ValueError(f"resume={run_dir}: that run already finished (metrics.json); "
                             f"nothing to resume")
        if not started:
            raise ValueError(f"resume={run_dir}: no progress.json or checkpoints/*-last.ckpt "
                             f"there, so nothing to continue from; start a new run instead")
        if os.path.isfile(progress_path):
            with open(progress_path) as fh:
                done = json.load(fh)["stages"]
            for result in done.values():  # the run directory may have moved since
                result["checkpoint"] = _in_run_dir(result["checkpoint"], ckpt_dir)
    else:
        if finished or started:  # never train over another run's results or checkpoints
            what = ("a finished run (metrics.json)" if finished else
                    f"an interrupted run ({PROGRESS_FILE} or checkpoints/*-last.ckpt); continue "
                    f"it with resume={run_dir}")
            raise ValueError(f"hydra.run.dir={run_dir} holds {what}; or choose another "
                             f"hydra.run.dir")
        saved = {**OmegaConf.to_container(cfg, resolve=True), RUN_DIR_KEY: os.path.abspath(run_dir)}
        _write_atomic(os.path.join(run_dir, "config.yaml"), OmegaConf.to_yaml(saved))

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup()
    setup_s = time.perf_counter() - start
    meta = checkpoint_meta(datamodule)

    if resume and cfg.get("logger") and str(cfg.logger.get("_target_", "")).endswith("CSVLogger"):
        cfg = copy.deepcopy(cfg)  # the earlier part's csv stays; this part logs beside it
        base = os.path.join(cfg.logger.save_dir, cfg.logger.name)
        n = 1
        while os.path.exists(os.path.join(base, f"resume-{n}")):
            n += 1
        cfg.logger.version = f"resume-{n}"
    logger = instantiate(cfg.logger) if cfg.get("logger") else None
    if logger is not None:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    stages = list(cfg.model.stages)
    coarse_state = None
    if cfg.model.get("init_from"):
        coarse_state = load_stage_state(cfg.model.init_from, datamodule)
        stages = [s for s in stages if s != "coarse"]
        if not stages:
            raise ValueError("model.init_from is set but the model has no stage after 'coarse'")

    results: dict = {"data": datamodule.stats(), "stages": {}, "time": {"setup_s": setup_s}}
    for stage in stages:
        scfg = cfg.model[stage]
        if stage in done:  # finished before the resume
            log.info("resume: stage %s already finished, result %s", stage,
                     done[stage]["checkpoint"])
            results["stages"][stage] = done[stage]
            if stage == "coarse":
                coarse_state = load_stage_state(done[stage]["checkpoint"], datamodule,
                                                setting=f"{PROGRESS_FILE} of resume")
            continue
        extra = {"graph": datamodule.graph}
        if stage == "fine":
            extra["coarse"] = coarse_state
        t0 = time.perf_counter()
        net = instantiate(scfg.net, _partial_=True)(**extra)
        init_s = time.perf_counter() - t0
        module = RecommenderModule(
            net, lr=scfg.lr, reg=cfg.model.reg, ks=cfg.eval.ks,
            update_frequency=scfg.get("update", {}).get("frequency", "every_epoch"),
            update_every=scfg.get("update", {}).get("every", 1),
            update_lr=scfg.get("update", {}).get("lr"), stage=stage, meta=meta,
            epoch_offset=sum(r["epochs"] for r in results["stages"].values()),
            topk_path=os.path.join(run_dir, f"topk_test_{stage}.npz") if cfg.eval.save_topk else None)
        datamodule.set_batch_size(scfg.batch_size)
        schedule = PhaseSchedule(net.phases, os.path.join(run_dir, "checkpoints"), stage,
                                 monitor=cfg.eval.monitor, patience=scfg.patience,
                                 phase_patience={"update": scfg.get("update", {}).get("patience")})
        last = ModelCheckpoint(dirpath=ckpt_dir,
                               filename=f"{stage}-last", save_top_k=1, every_n_epochs=1,
                               save_on_train_epoch_end=True, enable_version_counter=False)
        trainer = instantiate(cfg.trainer, logger=logger if logger is not None else False,
                              callbacks=[schedule, last], max_epochs=scfg.max_epochs)
        last_path = os.path.join(ckpt_dir, f"{stage}-last.ckpt")
        resume_from = last_path if resume and os.path.isfile(last_path) else None
        if resume_from:
            log.info("resume: stage %s from %s", stage, resume_from)
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=False)
        fit_s = time.perf_counter() - t0
        if schedule.result_path is None:
            raise RuntimeError(f"stage {stage}: no validation ran; lower trainer "
                               f"check_val_every_n_epoch (eval.every) or raise max_epochs")
        outcome = copy.deepcopy(schedule.state_dict())  # test() restores callback state
        assign_updates = module.assign_updates  # and the module's, from the tested checkpoint
        t0 = time.perf_counter()
        test = trainer.test(module, datamodule=datamodule, ckpt_path=schedule.result_path,
                            weights_only=False)[0]
        test_s = time.perf_counter() - t0
        schedule.load_state_dict(outcome)
        memory = memory_report(net)
        if stage == "coarse":
            coarse_state = coarse_state_of(net)
        val_s = sum(module.val_seconds)
        results["stages"][stage] = {
            "val": schedule.result_metrics,
            "test": {k: v for k, v in test.items() if k.startswith("test/")},
            "memory": memory,
            "phases": {p: schedule.best_metrics.get(p, {}).get("epoch") for p in net.phases},
            "epochs": trainer.current_epoch,
            "checkpoint": schedule.result_path,
            "history": schedule.history,
            "assign_updates": assign_updates,
            "time": {"init_s": init_s, "fit_s": fit_s, "val_s": val_s,
                     "train_s": fit_s - val_s, "test_s": test_s,
                     "val_pass_s": val_s / max(1, len(module.val_seconds))},
        }
        if resume_from:  # times above cover this process only
            results["stages"][stage]["resumed_from"] = resume_from
        done[stage] = results["stages"][stage]
        _write_atomic(progress_path, json.dumps({"stages": done}, indent=2))
        if logger is not None:
            logger.log_metrics({f"{stage}/{k}": v for k, v in _numeric(memory).items()})

    last = results["stages"][stages[-1]]
    results.update({"val": last["val"], "test": last["test"], "memory": last["memory"]})
    results["time"].update({
        "fit_s": sum(s["time"]["fit_s"] for s in results["stages"].values()),
        "val_s": sum(s["time"]["val_s"] for s in results["stages"].values()),
        "test_s": sum(s["time"]["test_s"] for s in results["stages"].values()),
        "total_s": time.perf_counter() - start,
    })
    if logger is not None:
        logger.log_metrics({**_numeric(last["memory"]),
                            **{f"time/{k}": v for k, v in results["time"].items()}})
        logger.finalize("success")
    _write_atomic(os.path.join(run_dir, "metrics.json"), json.dumps(results, indent=2))
    log.info("test: %s", json.dumps(results["test"]))
    return results
