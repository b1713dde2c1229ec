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


@pytest.fixture(scope="session")
def tiny_restorers(tmp_path_factory) -> dict[str, Path]:
    """Tiny seeded face restorers (32 px, random weights, no training): ``"blind"`` (a U-Net) and
    ``"ref"`` (a reference-guided codec), saved like shipped weights; the restore tests never need
    the shipped restorer files."""
    from recon3d.nn.registry import save_network
    from recon3d.nn.restoration import RESTORER, FaceRestorer

    d = tmp_path_factory.mktemp("restorers")
    ch = {32: 8, 16: 8, 8: 16, 4: 16}
    torch.manual_seed(0)
    nets = {"blind": FaceRestorer(res=32, kind="unet", channels=ch),
            "ref": FaceRestorer(res=32, kind="codec", block="res", prior=False, reference=True, channels=ch,
                                enc_blocks=1)}
    paths = {}
    for name, net in nets.items():
        paths[name] = d / f"{name}.safetensors"
        save_network(net, paths[name], RESTORER)
    return paths


@pytest.fixture(scope="session")
def blurred_astronaut():
    """scikit-image's astronaut (512 x 512 uint8), Gaussian-blurred (radius 2): a degraded face photo."""
    import numpy as np
    from PIL import Image, ImageFilter
    from skimage.data import astronaut

    return np.asarray(Image.fromarray(astronaut()).filter(ImageFilter.GaussianBlur(2)))


@pytest.fixture(scope="session")
def astronaut_fit():
    """scikit-image's astronaut reconstructed and unwrapped into a 64² UV map (recon3d.data.uv_pairs.fit_photo)."""
    import numpy as np
    from skimage.data import astronaut

    from recon3d.data.uv_pairs import fit_photo

    fit = fit_photo(astronaut()[:300, 100:400].astype(np.float32) / 255, res=64)
    assert not isinstance(fit, str), fit
    return fit
