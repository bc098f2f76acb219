"""Entry point: ``python -m cfme.run model=cfme data=gowalla``.

Composes ``conf/`` with Hydra, trains every stage of the model, writes ``metrics.json``,
checkpoints and the resolved config into the Hydra run directory.
"""

from __future__ import annotations

import logging
import os
import shutil

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from cfme.train import load_resumable, train

log = logging.getLogger(__name__)

# where a run executes, not what it computes: resume= takes these from the command line
RESUME_SETTINGS = ("trainer.accelerator", "trainer.devices", "threads")


def resume_config(run_dir: str, cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The saved config of the run in ``run_dir`` with the command line's execution settings.

    ``overrides`` are the call's command-line overrides besides ``resume=``; ``cfg`` is what
    Hydra composed from them. Only :data:`RESUME_SETTINGS` may change (to move a run between
    a GPU and a CPU machine, say); anything else would change the run and is refused. The
    run's own ``config.yaml`` is left as it is.
    """
    keys = {o.split("=", 1)[0].lstrip("+~"): o for o in overrides}
    refused = [o for key, o in keys.items() if key not in RESUME_SETTINGS]
    if refused:
        raise ValueError(f"resume={run_dir} continues that run with its saved config; drop the "
                         f"other overrides: {' '.join(refused)} (only "
                         f"{', '.join(RESUME_SETTINGS)} may change on resume)")
    saved = load_resumable(run_dir)
    for key in keys:
        OmegaConf.update(saved, key, OmegaConf.select(cfg, key), force_add=True)
    return saved


def log_into(run_dir: str) -> None:
    """Send this process's file log to ``run_dir/run.log`` (appended), for ``resume=``.

    Hydra opened a log in a new directory of its own for this call; that directory is removed
    when it holds nothing but what Hydra wrote there (an empty log and ``.hydra/``).
    """
    hydra_dir = os.path.realpath(HydraConfig.get().runtime.output_dir)
    if hydra_dir == os.path.realpath(run_dir):
        return  # hydra.run.dir=<the run>: Hydra already appends to its run.log
    logs = []
    root = logging.getLogger()
    for handler in list(root.handlers):
        if (isinstance(handler, logging.FileHandler)
                and os.path.dirname(os.path.realpath(handler.baseFilename)) == hydra_dir):
            root.removeHandler(handler)
            handler.close()
            name = os.path.basename(handler.baseFilename)
            moved = logging.FileHandler(os.path.join(run_dir, name), mode="a", delay=True)
            moved.setFormatter(handler.formatter)
            moved.setLevel(handler.level)
            root.addHandler(moved)
            logs.append(name)
    made = {os.path.join(".hydra", f) for f in ("config.yaml", "hydra.yaml", "overrides.yaml")}
    found = {os.path.relpath(os.path.join(d, f), hydra_dir)
             for d, _, files in os.walk(hydra_dir) for f in files}
    if found <= made | set(logs) and not any(
            os.path.getsize(os.path.join(hydra_dir, f)) for f in set(logs) & found):
        shutil.rmtree(hydra_dir)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    if cfg.get("resume"):
        # continue an interrupted run in its own directory, with its own saved config
        run_dir = os.path.abspath(os.path.expanduser(cfg.resume))
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        resumed = resume_config(run_dir, cfg, overrides)  # refuses before anything is written
        log_into(run_dir)
        log.info("resuming the run in %s%s", run_dir,
                 f" with {' '.join(overrides)} for this part" if overrides else "")
        cfg = resumed
        results = train(cfg, run_dir, resume=True)
    else:
        results = train(cfg, HydraConfig.get().runtime.output_dir)
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:  # pragma: no cover
        pass
    return results["val"].get(cfg.eval.monitor, float("nan"))


if __name__ == "__main__":
    main()
