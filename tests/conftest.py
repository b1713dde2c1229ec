"""Shared pytest fixtures: fixed seeds, TF32 off, the ../shared data root, gpu/slow markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RECON3D_SHARED", REPO.parent / "shared"))

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    import numpy as np

    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (development data); skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"development data not found at {SHARED} (set RECON3D_SHARED); skipped")
    return SHARED


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip_gpu = pytest.mark.skip(reason="needs CUDA; no GPU on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)
