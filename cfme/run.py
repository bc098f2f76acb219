"""Entry point: ``python -m cfme.run model=cfme data=gowalla``.

Composes ``conf/`` with Hydra, trains every stage of the model, writes ``metrics.json``,
checkpoints and the resolved config into the Hydra run directory.
"""

from __future__ import annotations

import logging
import os

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cfme.train import load_resumable, train

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    if cfg.get("resume"):
        # continue an interrupted run in its own directory, with its own saved config
        run_dir = os.path.abspath(os.path.expanduser(cfg.resume))
        ignored = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
        if ignored:
            raise ValueError(f"resume={cfg.resume} continues that run with its saved config; "
                             f"drop the other overrides: {' '.join(ignored)}")
        log.info("resuming the run in %s", run_dir)
        cfg = load_resumable(run_dir)
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
