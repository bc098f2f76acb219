"""Named datasets: where their files live, how to fetch them, and a binary cache.

A dataset is a directory holding ``train.txt`` and ``test.txt`` in the LightGCN
format. Text is parsed once and cached as ``.npz`` in a cache directory, keyed by
the files' SHA-1; the user's data directory is never written to (except the
download of absent files when the user asked for a named dataset).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field

import numpy as np

from cfme.data.reader import DataFormatError, read_adjacency_list

log = logging.getLogger(__name__)

_LIGHTGCN = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data"
_LEGCF = "https://raw.githubusercontent.com/xurong-liang/LEGCF/main/data"


@dataclass(frozen=True)
class DatasetInfo:
    """What is published about a dataset, for download and checks."""

    url: str
    num_users: int | None = None
    num_items: int | None = None
    num_train: int | None = None
    num_test: int | None = None
    sha1: dict = field(default_factory=dict)


KNOWN_DATASETS: dict[str, DatasetInfo] = {
    "gowalla": DatasetInfo(
        f"{_LIGHTGCN}/gowalla", 29_858, 40_981, 810_128, 217_242,
        {"train.txt": "4e639c2b2854f879e0ca79748336b9e70d07084a",
         "test.txt": "37062ef18e258af4df7935c288345418b21bca34"},
    ),
    "amazon-book": DatasetInfo(
        f"{_LIGHTGCN}/amazon-book", 52_643, 91_599, 2_380_730, 603_378,
        {"test.txt": "1252d5284cd7fe6f873e1ad30c24bb1bf66bb49d"},
    ),
    "yelp2018": DatasetInfo(
        f"{_LIGHTGCN}/yelp2018", 31_668, 38_048, 1_237_259, 324_147,
        {"test.txt": "c523520fea787db1e9c798d09bad4ad6f70b0932"},
    ),
    "yelp2020": DatasetInfo(
        f"{_LEGCF}/yelp2020", 71_135, 45_063, None, 384_561,
        {"test.txt": "05b5f089b3c575bce6535fb9760cc04246a6b3ed"},
    ),
}

SPLIT_FILES = ("train.txt", "test.txt")
CACHE_FORMAT = "1"  # bump when parsing or the cached arrays change


class DatasetUnavailableError(FileNotFoundError):
    """A dataset's files are absent and could not be downloaded."""


@dataclass
class RawSplit:
    """Train/test pairs of one dataset, as stored in the cache.

    ``train_users``/``train_items``: ``[|R|]`` int64; ``test_*`` likewise.
    """

    name: str
    num_users: int
    num_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray


def sha1_of(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def dataset_dir(name: str, root: str) -> str:
    """The directory holding ``name``'s split files (``root/name``, or ``root`` for custom)."""
    return os.path.abspath(root if name == "custom" else os.path.join(root, name))


def ensure_files(name: str, root: str, download: bool = True) -> dict[str, str]:
    """Paths of ``train.txt`` and ``test.txt``, downloading a known dataset's absent files.

    Raises:
        DatasetUnavailableError: the files are missing and could not be fetched; the
            message names the files and how to point ``data.root`` at a local copy.
    """
    directory = dataset_dir(name, root)
    paths = {f: os.path.join(directory, f) for f in SPLIT_FILES}
    missing = [f for f, p in paths.items() if not os.path.isfile(p)]
    if not missing:
        return paths
    info = KNOWN_DATASETS.get(name)
    why = "downloads are off (data.download=false)"
    if info is not None and download:
        try:
            os.makedirs(directory, exist_ok=True)
            for f in missing:
                _download(f"{info.url}/{f}", paths[f], info.sha1.get(f))
            return paths
        except (OSError, ValueError) as err:  # URLError is an OSError
            why = f"download from {info.url} failed ({err})"
    elif name == "custom":
        raise DatasetUnavailableError(
            f"data=custom: missing {', '.join(paths[f] for f in missing)}; data=custom never "
            f"downloads. Point data.root=/dir/with/train_and_test at a directory holding "
            f"LightGCN-format train.txt and test.txt.")
    elif info is None:
        why = f"'{name}' is not a known dataset ({', '.join(KNOWN_DATASETS)}, custom)"
    raise DatasetUnavailableError(
        f"dataset '{name}': missing {', '.join(os.path.join(directory, f) for f in missing)}; "
        f"{why}. Place the LightGCN-format files there, or point the config at a directory "
        f"that has them: data.root=/path/to/datasets (expects <root>/{name}/train.txt and "
        f"test.txt), or data=custom data.root=/dir/with/train_and_test."
    )


def _download(url: str, dest: str, sha1: str | None) -> None:
    log.info("downloading %s", url)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
        if sha1 is not None and sha1_of(tmp) != sha1:
            raise ValueError(f"{url}: checksum mismatch (expected sha1 {sha1})")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_split(
    name: str,
    root: str,
    cache_dir: str | None = None,
    download: bool = True,
) -> RawSplit:
    """Read a dataset's train/test pairs, from the binary cache when it is current.

    Sizes follow the published code: ``num_items`` = max item id over train and
    test + 1, users likewise. Known datasets are checked against published counts.
    """
    paths = ensure_files(name, root, download)
    info = KNOWN_DATASETS.get(name)
    digests = {f: sha1_of(p) for f, p in paths.items()}
    if info is not None:
        for f, expected in info.sha1.items():
            if digests[f] != expected:
                log.warning("%s: sha1 %s differs from the published %s", paths[f], digests[f],
                            expected)
    cache_path = None
    if cache_dir:
        key = "".join(digests[f] for f in SPLIT_FILES) + CACHE_FORMAT
        key = hashlib.sha1(key.encode()).hexdigest()[:20]
        cache_path = os.path.join(os.path.expanduser(cache_dir), f"{name}-{key}.npz")
        if os.path.isfile(cache_path):
            with np.load(cache_path) as z:
                return RawSplit(name, int(z["num_users"]), int(z["num_items"]),
                                z["train_users"], z["train_items"], z["test_users"],
                                z["test_items"])

    train = read_adjacency_list(paths["train.txt"])
    test = read_adjacency_list(paths["test.txt"])
    num_users = int(max(train.users.max(), test.users.max())) + 1
    num_items = int(max(train.items.max(), test.items.max())) + 1
    if info is not None and info.num_users is not None:
        if (num_users, num_items) != (info.num_users, info.num_items):
            raise DataFormatError(
                f"{paths['train.txt']}: {num_users} users x {num_items} items, but '{name}' is "
                f"published with {info.num_users} x {info.num_items}; wrong files for data={name}?"
            )
    split = RawSplit(name, num_users, num_items, train.users, train.items, test.users,
                     test.items)
    if cache_path is not None:
        save_cache(cache_path, split)
    return split


def save_cache(path: str, split: RawSplit) -> None:
    """Write the cache atomically (temp file, then rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.part")
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, num_users=split.num_users, num_items=split.num_items,
                 train_users=split.train_users, train_items=split.train_items,
                 test_users=split.test_users, test_items=split.test_items)
    os.replace(tmp, path)
