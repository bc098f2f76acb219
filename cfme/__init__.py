"""cfme: coarse-to-fine meta-embeddings (CFME, LEGCF) for lightweight graph recommenders."""

from omegaconf import OmegaConf

__version__ = "0.1.0"


def hydra_record_subdir(output_dir: str) -> str | None:
    """Where Hydra records a call in ``output_dir``: ``.hydra``, or nowhere (``None``) when
    ``output_dir`` already holds a started or finished run, whose own record must be kept
    (``resume=`` with ``hydra.run.dir=<the run>``, or a new run refused there)."""
    from cfme.train import run_state

    return None if any(run_state(output_dir)) else ".hydra"


# conf/config.yaml: hydra.output_subdir: ${cfme.hydra_record:${hydra.runtime.output_dir}}
if not OmegaConf.has_resolver("cfme.hydra_record"):
    OmegaConf.register_new_resolver("cfme.hydra_record", hydra_record_subdir)
