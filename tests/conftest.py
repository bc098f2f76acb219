"""Shared fixtures: repository paths and the real-data root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def conf_dir() -> Path:
    return CONF_DIR


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Where real datasets live: ``$CFME_DATA_ROOT`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("CFME_DATA_ROOT", REPO_ROOT.parent / "shared" / "data")).resolve()
