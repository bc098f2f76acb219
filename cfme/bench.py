"""Speed benchmark of the real code paths: ``python -m cfme.bench data=gowalla``.

Writes ``bench.json`` into the Hydra run directory and prints it. Every timing is the
median of ``bench.repeats`` runs after ``bench.warmup`` untimed ones, in one process; the
training steps (floor, full, legcf, cfme, PyG) are timed round-robin.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cfme.data.datasets import ensure_files, load_split
from cfme.data.reader import read_adjacency_list
from cfme.embeddings import CoarseMetaEmbedding, CoarseToFineMetaEmbedding, FullEmbedding
from cfme.memory import memory_report
from cfme.module import RecommenderModule
from cfme.propagation import lightgcn
from cfme.train import coarse_state_of


def _sync() -> None:
    """Wait for queued GPU work, so that wall time covers it (no-op on CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int) -> float:
    """Median wall seconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict, repeats: int, warmup: int) -> dict:
    """Median wall seconds of each ``fns[name]()``, timed round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync()
            start = time.perf_counter()
            fn()
            _sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field))


def extra_peak_mb(fn) -> float | None:
    """Peak resident memory ``fn()`` adds over what the process held before (Linux only)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak (VmHWM) to the current RSS
        before = _status_kb("VmRSS:")
        fn()
        return (_status_kb("VmHWM:") - before) / 1024
    except (OSError, StopIteration):
        return None


def module_step(module: RecommenderModule, batch, optimizer, clip: float):
    """One real training step: forward, BPR + L2, backward, value clipping, Adam."""
    def step():
        loss = module.training_step(batch, 1)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_value_(module.parameters(), clip)
        optimizer.step()
    return step


def floor_step(adj, weight, batch, num_users, num_layers, optimizer, reg):
    """Full-table LightGCN step with the symmetric propagation and nothing else."""
    users, pos, neg = batch
    def step():
        h = lightgcn(adj, weight, num_layers)
        hu = h[users]
        x = (hu * h[neg + num_users]).sum(-1) - (hu * h[pos + num_users]).sum(-1)
        loss = F.softplus(x).mean() + reg * (
            weight[users].pow(2).sum() + weight[pos + num_users].pow(2).sum()
            + weight[neg + num_users].pow(2).sum()) / len(users)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def pyg_step(graph, dim, num_layers, batch, device):
    """PyG's ``LightGCN`` model (edge-index message passing) on the same batch."""
    from torch_geometric.nn.models import LightGCN

    model = LightGCN(graph.num_nodes, dim, num_layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    edge_index = graph.edge_index.to(device)
    users, pos, neg = batch
    nu = graph.num_users
    label = torch.stack([torch.cat([users, users]), torch.cat([pos, neg]) + nu])
    def step():
        out = model(edge_index, label)
        half = out.shape[0] // 2
        loss = model.recommendation_loss(out[:half], out[half:], node_id=label.unique())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def run_bench(cfg: DictConfig) -> dict:
    b = cfg.bench
    device = torch.device(b.device if b.device != "auto" else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    out: dict = {"settings": {"data": cfg.data.name, "dim": cfg.model.dim,
                              "num_layers": cfg.backbone.num_layers, "batch_size": b.batch_size,
                              "n_neg": cfg.data.n_neg, "device": str(device),
                              "threads": torch.get_num_threads(), "repeats": b.repeats,
                              "torch": torch.__version__}}
    dm = instantiate(cfg.data)
    if cfg.data.name != "synthetic":
        paths = ensure_files(dm.name, os.path.abspath(dm.root), dm.download)
        out["parse_s"] = timed(lambda: [read_adjacency_list(p) for p in paths.values()], 1, 0)
        cache = os.path.join(HydraConfig.get().runtime.output_dir, "cache")
        load_split(dm.name, os.path.abspath(dm.root), cache, False)  # fills the cache
        out["cache_load_s"] = timed(
            lambda: load_split(dm.name, os.path.abspath(dm.root), cache, False), 3, 0)
    start = time.perf_counter()
    dm.setup()
    out["setup_s"] = time.perf_counter() - start
    out["settings"].update(dm.stats())
    rng = np.random.default_rng(0)
    out["sample_epoch_s"] = timed(lambda: dm.sampler.sample(rng), b.repeats, 0)

    u, i, j = dm.sampler.sample(rng)
    batch = tuple(torch.from_numpy(a[:b.batch_size]).to(device) for a in (u, i, j))
    graph, dim, layers = dm.graph, cfg.model.dim, cfg.backbone.num_layers
    reg, clip = cfg.model.reg, cfg.trainer.gradient_clip_val
    rep, warm = b.repeats, b.warmup

    def step_of(net):
        module = RecommenderModule(net, reg=reg).to(device)
        module.log = lambda *a, **k: None
        return module, module_step(module, batch, module.configure_optimizers(), clip)

    full = FullEmbedding(graph, dim, layers).to(device)
    floor_opt = torch.optim.Adam([full.weight], lr=1e-3)
    steps = {"floor_step_s": floor_step(graph.adjacency(device), full.weight, batch,
                                        graph.num_users, layers, floor_opt, reg),
             "full_step_s": step_of(full)[1]}

    ccfg = cfg.model.coarse.net
    start = time.perf_counter()
    coarse = CoarseMetaEmbedding(graph, dim, layers, ccfg.num_coarse, ccfg.t, ccfg.anchor_weight,
                                 ccfg.partition, cfg.seed, bias=cfg.model.bias,
                                 metis_options=ccfg.get("metis_options")).to(device)
    coarse.expanded_graph(device)
    out["stage1_init_s"] = time.perf_counter() - start
    steps["legcf_step_s"] = step_of(coarse)[1]

    fcfg = cfg.model.fine.net
    start = time.perf_counter()
    fine = CoarseToFineMetaEmbedding(graph, coarse_state_of(coarse), dim, layers, fcfg.num_fine,
                                     fcfg.k, fcfg.soft_threshold, fcfg.bridge, fcfg.k_pca,
                                     fcfg.partition, cfg.seed, bias=cfg.model.bias,
                                     metis_options=fcfg.get("metis_options")).to(device)
    fine._graphs(device)
    out["stage2_init_s"] = time.perf_counter() - start
    fine_module, steps["cfme_step_s"] = step_of(fine)
    if b.pyg:
        steps["pyg_step_s"] = pyg_step(graph, dim, layers, batch, device)
    # interleaved: every repetition times each step once, so drifts in machine speed hit
    # all of them alike and the ratios stay meaningful
    out.update(interleaved(steps, rep, warm))

    with torch.no_grad():
        h1, h2 = coarse()[0], fine()[0]
    def update1():
        coarse.update_assignment(h1)
        coarse.expanded_graph(device)
    def update2():
        fine.update_assignment(h2)
        fine._graphs(device)
    out["assign_update_s"] = {"stage1": timed(update1, rep, 1), "stage2": timed(update2, rep, 1)}

    def val_pass():
        fine_module._start_eval()
        for chunk in dm.val_dataloader():
            fine_module._eval_step({k: v.to(device) for k, v in chunk.items()})
        return fine_module.evaluator.compute()
    out["val_pass_s"] = timed(val_pass, max(1, rep // 2), 0)
    out["val_extra_mb"] = extra_peak_mb(val_pass)
    out["memory"] = {"full": memory_report(FullEmbedding(graph, dim, layers)),
                     "legcf": memory_report(coarse), "cfme_at_init": memory_report(fine)}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    f = out["floor_step_s"]
    out["ratios"] = {"cfme_over_floor": out["cfme_step_s"] / f,
                     "legcf_over_floor": out["legcf_step_s"] / f,
                     "full_over_floor": out["full_step_s"] / f}
    if "pyg_step_s" in out:
        out["ratios"]["cfme_over_pyg"] = out["cfme_step_s"] / out["pyg_step_s"]
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out = run_bench(cfg)
    out["settings"]["overrides"] = OmegaConf.to_container(HydraConfig.get().overrides.task)
    path = os.path.join(HydraConfig.get().runtime.output_dir, "bench.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
