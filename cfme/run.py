"""Entry point: ``python -m cfme.run model=cfme data=gowalla``.

Composes ``conf/`` with Hydra, trains every stage of the model, writes ``metrics.json``,
checkpoints and the resolved config into the Hydra run directory.
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from cfme.train import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
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
