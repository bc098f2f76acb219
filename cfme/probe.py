"""Re-solve probe: how validation quality moves at each stage-1 assignment re-solve.

``python -m cfme.probe data=gowalla model.bias=false`` trains stage 1 with S fixed at its
METIS initialization for ``probe.fixed_steps`` steps (or, instead, starts from
``probe.checkpoint``, a stage-1 ``.ckpt`` or run directory of the same data, with its
Adam moments unless ``probe.keep_optimizer=false``), then runs
``probe.cycles`` cycles of: re-solve ``S <- top_t(H_N pinv(H_C))``, validate, train
``probe.steps`` steps at ``probe.lr``, validate (every ``probe.validate_every``-th cycle;
``probe.validate_resolve=false`` skips the validation right after the re-solve). Each
validation, with the mean S value and mean |C|, is appended to ``history.jsonl`` in the run
directory as it happens, so a stopped probe keeps what it measured; ``probe.json`` (settings
and the whole history) is written at the end. The state with the best validation NDCG@5
after training is kept as ``checkpoints/coarse-update-best.ckpt``, a stage-1 checkpoint that
``model.init_from`` accepts (stage 2 from it) and another probe can start from. It isolates
what the re-solve itself does to ranking quality from what training in between does.
"""

from __future__ import annotations

import json
import os
import time

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cfme.bench import module_step
from cfme.module import RecommenderModule
from cfme.train import checkpoint_meta, load_stage_state


def _batches(dm, batch_size: int, device):
    dm.set_batch_size(batch_size)
    epoch = 0
    while True:
        dm.set_epoch(epoch)
        epoch += 1
        for batch in dm.train_dataloader():
            yield tuple(x.to(device) for x in batch)


def run_probe(cfg: DictConfig, out_dir: str | None = None) -> dict:
    """Run the probe; with ``out_dir``, append each validation to ``out_dir/history.jsonl``."""
    p = cfg.probe
    every = p.get("validate_every", 1)
    if every < 1:
        raise ValueError(f"probe.validate_every={every} must be >= 1")
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    net = instantiate(cfg.model.coarse.net, _partial_=True)(graph=dm.graph)
    if p.checkpoint:  # refuses checkpoints of another dataset or size
        state = load_stage_state(p.checkpoint, dm, setting="probe.checkpoint")
        if (state["bias"] is not None) != (net.bias is not None):
            raise ValueError(f"probe.checkpoint={p.checkpoint} was trained with model.bias="
                             f"{state['bias'] is not None}; set model.bias to match")
        with torch.no_grad():
            net.codebook.copy_(state["codebook"])
            if net.bias is not None:
                net.bias.copy_(state["bias"])
        net.s_index, net.s_value = state["s_index"], state["s_value"]
        net.invalidate_graph()
    module = RecommenderModule(net, lr=p.fixed_lr, reg=cfg.model.reg, stage="coarse",
                               meta=checkpoint_meta(dm)).to(device)
    optimizer = module.configure_optimizers()
    keep_adam = bool(p.checkpoint and p.get("keep_optimizer", True) and state["optimizer"] is not None)
    if keep_adam:
        try:  # Adam's moments, as the run had them
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as err:
            raise ValueError(f"probe.checkpoint={p.checkpoint}: its optimizer state does not fit "
                             f"this model ({err}); set probe.keep_optimizer=false") from err

    def step(batch) -> None:
        module.log = lambda *a, **k: None  # no trainer around these steps to log to
        module_step(module, batch, optimizer, cfg.trainer.gradient_clip_val)()
        del module.log
    validator = L.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False,
                          inference_mode=False, accelerator=device.type, devices=1)
    start = time.perf_counter()
    history = []
    log_path = os.path.join(out_dir, "history.jsonl") if out_dir else None
    if log_path:
        open(log_path, "w").close()  # this run's history only

    best = {"ndcg@5": -1.0}
    ckpt_path = os.path.join(out_dir, "checkpoints", "coarse-update-best.ckpt") if out_dir else None

    def keep_if_best(metrics: dict, steps: int) -> None:
        if ckpt_path is None or metrics["val/ndcg@5"] <= best["ndcg@5"]:
            return
        best["ndcg@5"] = metrics["val/ndcg@5"]
        os.makedirs(os.path.dirname(ckpt_path), exist_ok=True)
        ckpt = {"state_dict": module.state_dict(), "optimizer_states": [optimizer.state_dict()]}
        module.phase = "update"
        module.on_save_checkpoint(ckpt)  # the training runs' "cfme" record (stage, data, order)
        ckpt["cfme"]["probe_steps"] = steps
        tmp = ckpt_path + ".tmp"
        torch.save(ckpt, tmp)
        os.replace(tmp, ckpt_path)

    def validate(event: str, steps: int) -> None:
        metrics = validator.validate(module, datamodule=dm, verbose=False)[0]
        module.to(device)  # the trainer's teardown moved it to the CPU; Adam's state did not move
        if event.startswith("trained"):
            keep_if_best(metrics, steps)
        history.append({"event": event, "steps": steps, "seconds": time.perf_counter() - start,
                        **{k: v for k, v in metrics.items() if k.startswith("val/")},
                        "s_value_mean": float(net.s_value.mean()),
                        "codebook_abs_mean": float(net.codebook.detach().abs().mean())})
        print(json.dumps(history[-1]), flush=True)
        if log_path:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(history[-1]) + "\n")

    batches = _batches(dm, p.batch_size, device)
    fixed_steps = 0 if p.checkpoint else p.fixed_steps  # a checkpoint replaces the fixed phase
    for _ in range(fixed_steps):
        step(next(batches))
    validate("checkpoint" if p.checkpoint else "fixed", fixed_steps)
    for group in optimizer.param_groups:
        group["lr"] = p.lr
    done = fixed_steps
    for cycle in range(p.cycles):
        with torch.no_grad():
            h, _ = net()
        net.update_assignment(h)
        due = (cycle + 1) % every == 0 or cycle + 1 == p.cycles
        if due and p.get("validate_resolve", True):
            validate(f"re-solve {cycle + 1}", done)
        for _ in range(p.steps):
            step(next(batches))
        done += p.steps
        if due:
            validate(f"trained after re-solve {cycle + 1}", done)
    return {"settings": {**OmegaConf.to_container(p), "bias": net.bias is not None,
                         "optimizer_from_checkpoint": keep_adam,
                         "data": cfg.data.name}, "history": history}


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out_dir = HydraConfig.get().runtime.output_dir
    out = run_probe(cfg, out_dir)
    path = os.path.join(out_dir, "probe.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
