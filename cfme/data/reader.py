"""Reader for the LightGCN "adjacency list" text format.

One line per user: ``user item item ...``, whitespace separated, 0-based ids.
Errors name the file and line at fault; the input files are only ever read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


class DataFormatError(ValueError):
    """Raised for malformed interaction files (message names file and line)."""


@dataclass
class Interactions:
    """Interaction pairs read from one file.

    Attributes:
        users: ``[nnz]`` int64 user ids.
        items: ``[nnz]`` int64 item ids.
        path: the file they came from.
        duplicates: how many repeated (user, item) pairs were dropped.
    """

    users: np.ndarray
    items: np.ndarray
    path: str
    duplicates: int = 0

    def __len__(self) -> int:
        return int(self.users.shape[0])


def read_adjacency_list(
    path: str | os.PathLike,
    num_users: int | None = None,
    num_items: int | None = None,
) -> Interactions:
    """Parse a LightGCN ``train.txt``/``test.txt``.

    Args:
        path: the file.
        num_users, num_items: declared sizes; ids at or beyond them are errors.

    Returns:
        :class:`Interactions` with duplicate pairs removed (a warning gives their count).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: interaction file not found")
    with open(path, "rb") as fh:
        text = fh.read()
    if not text.strip():
        raise DataFormatError(f"{path}: file is empty")

    user_chunks: list[np.ndarray] = []
    item_chunks: list[np.ndarray] = []
    for lineno, raw in enumerate(text.split(b"\n"), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        try:
            ids = np.array(tokens, dtype=np.int64)
        except (ValueError, OverflowError):
            bad = next(t for t in tokens if not _is_int(t))
            raise DataFormatError(
                f"{path}:{lineno}: token {bad.decode(errors='replace')!r} is not an integer id "
                f"(or does not fit in int64)"
            ) from None
        if ids.size < 2:
            raise DataFormatError(f"{path}:{lineno}: user {ids[0]} has no items")
        if (ids < 0).any():
            raise DataFormatError(f"{path}:{lineno}: negative id {int(ids[ids < 0][0])}")
        if num_users is not None and ids[0] >= num_users:
            raise DataFormatError(
                f"{path}:{lineno}: user id {ids[0]} is beyond the declared {num_users} users"
            )
        if num_items is not None and (ids[1:] >= num_items).any():
            bad_item = int(ids[1:][ids[1:] >= num_items][0])
            raise DataFormatError(
                f"{path}:{lineno}: item id {bad_item} is beyond the declared {num_items} items"
            )
        user_chunks.append(np.full(ids.size - 1, ids[0], dtype=np.int64))
        item_chunks.append(ids[1:])

    users = np.concatenate(user_chunks)
    items = np.concatenate(item_chunks)
    return _drop_duplicates(Interactions(users, items, path))


def _is_int(token: bytes) -> bool:
    try:
        return -(2**63) <= int(token) < 2**63
    except ValueError:
        return False


def _drop_duplicates(inter: Interactions) -> Interactions:
    span = int(inter.items.max()) + 1
    keys = inter.users * span + inter.items
    uniq, first = np.unique(keys, return_index=True)
    dups = len(keys) - len(uniq)
    if dups:
        log.warning("%s: %d duplicate (user, item) interactions dropped", inter.path, dups)
        keep = np.sort(first)
        return Interactions(inter.users[keep], inter.items[keep], inter.path, dups)
    return inter


def write_adjacency_list(path: str | os.PathLike, users: np.ndarray, items: np.ndarray) -> None:
    """Write pairs in the LightGCN format (one line per user, users ascending)."""
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    with open(path, "w") as fh:
        for u_items, u in zip(np.split(items, bounds), users[np.r_[0, bounds]], strict=True):
            fh.write(f"{u} " + " ".join(map(str, u_items.tolist())) + "\n")
