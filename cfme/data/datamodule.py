"""LightningDataModule: interactions, the training graph, triplet batches, ranking batches."""

from __future__ import annotations

import hashlib
import logging
import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cfme.data.datasets import RawSplit, load_split
from cfme.data.sampler import EpochTriplets, TripletSampler
from cfme.data.split import check_split_method, split_validation
from cfme.data.synthetic import generate_synthetic
from cfme.graph import TrainingGraph

log = logging.getLogger(__name__)


class CSRPairs:
    """Per-user item lists ``[num_users + 1]`` indptr, ``[nnz]`` indices (sorted per user)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, num_users: int):
        order = np.lexsort((items, users))
        self.indices = items[order].astype(np.int64)
        self.indptr = np.zeros(num_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=num_users), out=self.indptr[1:])

    def __len__(self) -> int:
        return len(self.indices)

    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self, users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """COO ``(local_row, item)`` of the given users' items, local row = position in ``users``."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        counts = ends - starts
        local = np.repeat(np.arange(len(users)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return torch.from_numpy(local), torch.from_numpy(self.indices[np.repeat(starts, counts) + offsets])


class RankingBatches(Dataset):
    """Chunks of users for full ranking; each item is a dict with

    ``users [B]``, ``mask_index [2, *]`` (training items to exclude) and
    ``label_index [2, *]`` (relevant items), rows local to the chunk.
    """

    def __init__(self, users: np.ndarray, train: CSRPairs, relevant: CSRPairs, chunk: int):
        self.users, self.train, self.relevant, self.chunk = users, train, relevant, chunk

    def __len__(self) -> int:
        return -(-len(self.users) // self.chunk)

    def __getitem__(self, k: int) -> dict:
        users = self.users[k * self.chunk:(k + 1) * self.chunk]
        return {
            "users": torch.from_numpy(users),
            "mask_index": torch.stack(self.train.rows(users)),
            "label_index": torch.stack(self.relevant.rows(users)),
        }


class InteractionDataModule(L.LightningDataModule):
    """Reads a dataset, splits validation off test, builds Â and samples triplets.

    Args:
        name: ``gowalla``, ``amazon-book``, ``yelp2018``, ``yelp2020``, ``custom`` or
            ``synthetic``.
        root: directory of datasets (``<root>/<name>/{train,test}.txt``; for ``custom``
            the directory holding the two files). Relative paths are resolved against
            the working directory.
        cache_dir: where parsed binaries are cached (never the data directory).
        download: fetch a known dataset's absent files.
        synthetic: generator arguments for ``name=synthetic``.
        split_seed: seed of the validation/test split.
        split_method: how the split is drawn: ``default`` (vectorized, numpy's
            ``Generator``) or ``authors`` (the authors' loader's draw: numpy's legacy
            ``RandomState(split_seed)``, one ``choice`` per user in file order: on their
            files, the validation and test items of their runs with that seed). Both put
            ``ceil(|test_u| / 3)`` of each user's test items in validation.
        sample_seed: seed of the triplet sampler.
        n_neg: negatives per drawn user.
        batch_size: triplets per training step.
        eval_chunk: most users per ranking chunk.
        eval_memory_mb: cap on one chunk's score matrix (``chunk x num_items`` fp32); the
            chunk shrinks to fit it (2048 users on gowalla, 1465 on amazon-book at 512 MiB).
        reorder: relabel users and items internally so that sparse propagation reads
            memory locally (users stay before items): ``"metis"`` lays out METIS parts of
            about 256 nodes contiguously, ``"rcm"`` (or ``true``, its older spelling)
            uses reverse Cuthill-McKee order, ``false`` keeps the files' order. The split
            and the evaluation are unchanged; what depends on ids (METIS init of S, the
            sampler's draws) is seeded per internal id, so runs of different orders
            differ as runs of different seeds do. Checkpoints record the order and are
            only reloaded under the same one. ``user_ids`` / ``item_ids`` map internal ids
            back to the files' ids.
    """

    def __init__(self, name: str = "synthetic", root: str = "../shared/data",
                 cache_dir: str | None = None, download: bool = True,
                 synthetic: dict | None = None, split_seed: int = 2024, sample_seed: int = 0,
                 n_neg: int = 5, batch_size: int = 8192, eval_chunk: int = 2048,
                 eval_memory_mb: int = 512,
                 reorder: str | bool = "metis", split_method: str = "default"):
        super().__init__()
        self.name, self.root, self.cache_dir, self.download = name, root, cache_dir, download
        self.synthetic = dict(synthetic or {})
        self.split_seed, self.sample_seed = split_seed, sample_seed
        self.n_neg, self.batch_size, self.eval_chunk = n_neg, batch_size, eval_chunk
        self.eval_memory_mb = eval_memory_mb
        self.reorder = normalize_reorder(reorder)
        self.split_method = check_split_method(split_method)
        self.raw: RawSplit | None = None

    def prepare_data(self) -> None:
        self._load()

    def _load(self) -> RawSplit:
        if self.raw is None:
            if self.name == "synthetic":
                self.raw = generate_synthetic(**self.synthetic)
            else:
                self.raw = load_split(self.name, os.path.abspath(os.path.expanduser(self.root)),
                                      self.cache_dir, self.download)
        return self.raw

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "graph"):
            return
        raw = self._load()
        self.num_users, self.num_items = raw.num_users, raw.num_items
        # drawn on the files' ids (relabelling keeps the pairs' order, so the mask carries over)
        is_val = split_validation(raw.test_users, raw.test_items, self.split_seed,
                                  self.split_method)
        if self.reorder != "none":
            self.user_ids, self.item_ids = locality_order(raw, self.reorder)
            raw = relabel(raw, self.user_ids, self.item_ids)
        else:
            self.user_ids, self.item_ids = np.arange(raw.num_users), np.arange(raw.num_items)
        # the order itself, as kept in checkpoints: METIS builds may differ between machines
        self.order_digest = hashlib.sha1(self.user_ids.astype(np.int64).tobytes()
                                         + self.item_ids.astype(np.int64).tobytes()).hexdigest()[:16]
        self.train = CSRPairs(raw.train_users, raw.train_items, raw.num_users)
        self.val = CSRPairs(raw.test_users[is_val], raw.test_items[is_val], raw.num_users)
        self.test = CSRPairs(raw.test_users[~is_val], raw.test_items[~is_val], raw.num_users)
        self.graph = TrainingGraph.from_interactions(raw.train_users, raw.train_items,
                                                     raw.num_users, raw.num_items)
        self.graph.file_ids = np.concatenate([self.user_ids, self.item_ids + raw.num_users])
        self.sampler = TripletSampler(self.train.indptr, self.train.indices, raw.num_items,
                                      self.n_neg)
        self.triplets = EpochTriplets(self.sampler, self.batch_size, self.sample_seed)
        log.info("%s: %d users, %d items, %d train / %d val / %d test interactions", self.name,
                 self.num_users, self.num_items, len(self.train), len(self.val), len(self.test))

    def stats(self) -> dict:
        return {"num_users": self.num_users, "num_items": self.num_items,
                "num_train": len(self.train), "num_val": len(self.val), "num_test": len(self.test)}

    def set_batch_size(self, batch_size: int) -> None:
        self.batch_size = self.triplets.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        """Draw the next training pass from ``(sample seed, epoch)``."""
        self.triplets.epoch = epoch

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.triplets, batch_size=None)

    def _ranking(self, relevant: CSRPairs) -> DataLoader:
        users = np.flatnonzero(relevant.degree() > 0)
        return DataLoader(RankingBatches(users, self.train, relevant, self.ranking_chunk()),
                          batch_size=None)

    def ranking_chunk(self) -> int:
        """Users per ranking chunk: ``eval_chunk``, or fewer so the scores fit ``eval_memory_mb``."""
        fit = (self.eval_memory_mb << 20) // (4 * self.num_items)
        return max(1, min(self.eval_chunk, fit))

    def val_dataloader(self) -> DataLoader:
        return self._ranking(self.val)

    def test_dataloader(self) -> DataLoader:
        return self._ranking(self.test)


REORDERINGS = ("metis", "rcm", "none")


def normalize_reorder(value) -> str:
    """``data.reorder`` as one of REORDERINGS (``true`` is the older spelling of ``rcm``)."""
    if isinstance(value, bool):
        return "rcm" if value else "none"
    name = str(value).strip().lower()
    name = {"true": "rcm", "false": "none"}.get(name, name)
    if name not in REORDERINGS:
        raise ValueError(f"data.reorder={value!r} must be one of {', '.join(REORDERINGS)} "
                         f"(or true for rcm, false for none)")
    return name


def check_order_digest(meta: dict, digest: str, what: str) -> None:
    """Refuse a checkpoint whose internal node order differs from this run's."""
    if meta.get("order_digest") not in (None, digest):
        raise ValueError(f"{what}: the checkpoint's node order differs from the one computed "
                         f"here for the same data.reorder (another METIS build?); rows would "
                         f"be mismatched. Continue it on a machine that reproduces the order, "
                         f"or use data.reorder=rcm, which needs only scipy")


NODES_PER_PART = 256  # METIS order: a part's rows (256 x d floats) stay in cache together


def locality_order(raw: RawSplit, method: str = "metis") -> tuple[np.ndarray, np.ndarray]:
    """An order of the training graph's nodes that keeps neighbours close, kept within
    users and items: METIS parts of about ``NODES_PER_PART`` nodes one after another
    (``"metis"``, seed 0), or reverse Cuthill-McKee (``"rcm"``).

    Returns ``(user_ids, item_ids)``: the original id at each internal position.
    """
    nu, n = raw.num_users, raw.num_users + raw.num_items
    if method == "metis":
        from cfme.assignment import partition

        graph = TrainingGraph.from_interactions(raw.train_users, raw.train_items, raw.num_users,
                                                raw.num_items)
        try:
            parts = partition(graph, max(1, -(-n // NODES_PER_PART)), seed=0)
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(f"data.reorder=metis needs pymetis ({err}); data.reorder=rcm "
                              f"needs only scipy") from err
        order = np.argsort(parts, kind="stable")
    elif method == "rcm":
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        rows = np.concatenate([raw.train_users, raw.train_items + nu])
        cols = np.concatenate([raw.train_items + nu, raw.train_users])
        graph = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
        order = reverse_cuthill_mckee(graph, symmetric_mode=True)
    else:
        raise ValueError(f"unknown reordering {method!r}; one of {', '.join(REORDERINGS)}")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return np.argsort(rank[:nu], kind="stable"), np.argsort(rank[nu:], kind="stable")


def relabel(raw: RawSplit, user_ids: np.ndarray, item_ids: np.ndarray) -> RawSplit:
    """The same split with ids replaced by their internal positions."""
    new_user = np.empty_like(user_ids)
    new_user[user_ids] = np.arange(len(user_ids))
    new_item = np.empty_like(item_ids)
    new_item[item_ids] = np.arange(len(item_ids))
    return RawSplit(raw.name, raw.num_users, raw.num_items,
                    new_user[raw.train_users], new_item[raw.train_items],
                    new_user[raw.test_users], new_item[raw.test_items])
