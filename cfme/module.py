"""LightningModule around a graph recommender: BPR training, assignment updates, ranking eval."""

from __future__ import annotations

import os
import time

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from cfme.data.datamodule import check_order_digest
from cfme.embeddings import GraphRecommender
from cfme.metrics import RankingEvaluator

UPDATE_FREQUENCIES = ("every_epoch", "only_once", "every_k_epochs")


class RecommenderModule(L.LightningModule):
    """Trains one stage of a model.

    Args:
        net: the embedding model (``forward() -> (H [N + V, d], E [N, d])``).
        lr: Adam learning rate of the stage's trainable parameters.
        reg: L2 weight on the batch's ego embeddings, ``reg (|e_u|² + |e_i|² + |e_j|²) / B``.
        ks: cut-offs of Recall@K and NDCG@K.
        update_frequency: in the ``update`` phase, when to recompute the assignment:
            ``every_epoch``, ``only_once`` (first epoch of the phase) or
            ``every_k_epochs`` (every ``update_every`` epochs).
        update_lr: learning rate from the start of the ``update`` phase on (``None``: ``lr``).
        epoch_offset: training pass ``e`` of this stage draws the triplets of pass
            ``epoch_offset + e`` (a later stage continues the earlier stages' sequence).
        stage: name of the stage (``full``, ``coarse``, ``fine``), kept in checkpoints.
        topk_path: if set, the test pass writes each user's top-K items there (``.npz``).
        meta: facts about the data kept in checkpoints to validate reloads.
    """

    def __init__(self, net: GraphRecommender, lr: float = 1e-3, reg: float = 5e-4,
                 ks=(5, 10, 20, 50), update_frequency: str = "every_epoch",
                 update_every: int = 1, update_lr: float | None = None, stage: str = "full",
                 topk_path: str | None = None, meta: dict | None = None, epoch_offset: int = 0):
        super().__init__()
        if update_frequency not in UPDATE_FREQUENCIES:
            raise ValueError(f"update.frequency={update_frequency!r}: use one of "
                             f"{', '.join(UPDATE_FREQUENCIES)}")
        if update_every < 1:
            raise ValueError(f"update.every={update_every} must be >= 1")
        if update_lr is not None and update_lr <= 0:
            raise ValueError(f"update.lr={update_lr} must be > 0 (or null: the stage's lr)")
        self.net, self.lr, self.reg = net, lr, reg
        self.update_frequency, self.update_every = update_frequency, update_every
        self.update_lr, self.epoch_offset = update_lr, epoch_offset
        self.stage, self.topk_path, self.meta = stage, topk_path, dict(meta or {})
        self.phase = net.phases[0]
        self.phase_start_epoch = 0
        self.evaluator = RankingEvaluator(ks)
        self.val_seconds: list[float] = []
        self.assign_updates = 0
        self._h: torch.Tensor | None = None
        self._topk: list[tuple[np.ndarray, np.ndarray]] = []

    # -- training ---------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.net.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.lr)

    def enter_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_start_epoch = self.current_epoch + 1
        if phase == "update" and self.update_lr is not None:
            for group in self.optimizers().optimizer.param_groups:
                group["lr"] = self.update_lr

    def on_train_epoch_start(self) -> None:
        # triplets are drawn from (seed, epoch): a resumed run continues the same sequence
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.epoch_offset + self.current_epoch)

    def _update_due(self) -> bool:
        if self.phase != "update":
            return False
        since = self.current_epoch - self.phase_start_epoch
        if self.update_frequency == "only_once":
            return since == 0
        if self.update_frequency == "every_k_epochs":
            return since % self.update_every == 0
        return True

    def training_step(self, batch, batch_idx: int):
        users, pos, neg = batch
        h, ego = self.net()
        nu, size = self.net.num_users, users.shape[0]
        # one gather per tensor: index_select's backward is a single index_add into [N, d]
        index = torch.cat([users, pos + nu, neg + nu])
        h_u, h_i, h_j = h.index_select(0, index).split(size)
        pos_score = self.net.score(h_u, h_i, users, pos)
        neg_score = self.net.score(h_u, h_j, users, neg)
        bpr = F.softplus(neg_score - pos_score).mean()
        l2 = ego.index_select(0, index).pow(2).sum() / size
        loss = bpr + self.reg * l2
        if batch_idx == 0 and self._update_due():
            start = time.perf_counter()
            self.net.update_assignment(h.detach())
            if h.is_cuda:  # time the kernels, not their launch
                torch.cuda.synchronize(h.device)
            self.assign_updates += 1
            self.log("time/assign_update_s", time.perf_counter() - start)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/bpr", bpr)
        return loss

    # -- evaluation ---------------------------------------------------------------------
    def _start_eval(self) -> None:
        self._t0 = time.perf_counter()
        with torch.no_grad():
            self._h = self.net()[0]
        self.evaluator.reset()
        self._topk = []

    def _eval_step(self, batch) -> torch.Tensor:
        users = batch["users"]
        nu, ni = self.net.num_users, self.net.num_items
        scores = self.net.score_all(self._h[users], self._h[nu:nu + ni], users)
        return self.evaluator.update(scores, batch["mask_index"], batch["label_index"])

    def _end_eval(self, prefix: str) -> dict:
        results = self.evaluator.compute()
        for name, value in results.items():
            self.log(f"{prefix}/{name}", value, prog_bar=name == "ndcg@20")
        self._h = None
        return results

    def on_validation_epoch_start(self) -> None:
        self._start_eval()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._end_eval("val")
        self.val_seconds.append(time.perf_counter() - self._t0)
        self.log("time/val_pass_s", self.val_seconds[-1])
        if hasattr(self.net, "fine_nnz"):
            self.log("memory/fine_density", self.net.fine_nnz() / self.net.fine.numel())

    def on_test_epoch_start(self) -> None:
        self._start_eval()

    def test_step(self, batch, batch_idx: int) -> None:
        top = self._eval_step(batch)
        if self.topk_path:
            self._topk.append((batch["users"].cpu().numpy(), top.cpu().numpy()))

    def on_test_epoch_end(self) -> None:
        self._end_eval("test")
        self.test_seconds = time.perf_counter() - self._t0
        if self.topk_path and self._topk:
            users = np.concatenate([u for u, _ in self._topk])
            items = np.concatenate([t for _, t in self._topk])
            dm = getattr(self.trainer, "datamodule", None)
            if dm is not None and hasattr(dm, "user_ids"):  # back to the files' ids
                users = dm.user_ids[users]
                items = np.where(items < len(dm.item_ids),
                                 dm.item_ids[np.minimum(items, len(dm.item_ids) - 1)], -1)
            os.makedirs(os.path.dirname(self.topk_path) or ".", exist_ok=True)
            np.savez_compressed(self.topk_path, users=users, items=items)

    # -- checkpoints --------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["cfme"] = {"stage": self.stage, "phase": self.phase,
                              "phase_start_epoch": self.phase_start_epoch,
                              "assign_updates": self.assign_updates, **self.meta}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("cfme", {})
        if self.meta.get("order_digest"):
            check_order_digest(state, self.meta["order_digest"], "resume")
        self.phase = state.get("phase", self.phase)
        self.phase_start_epoch = state.get("phase_start_epoch", self.phase_start_epoch)
        # counted over the stage, so a resumed run reports every update, not its part's
        self.assign_updates = state.get("assign_updates", self.assign_updates)
