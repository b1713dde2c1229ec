"""Inputs of the model builder: the MediaPipe cache written by ``tools/build_mediapipe_cache.py`` and
the photos' 300-W ``.pts`` landmarks (read with :func:`recon3d.io.landmarks_file.read_pts`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...conventions import frontal_rotation
from ...errors import AssetError
from ...io.landmarks_file import read_pts

__all__ = ["BuildData", "load_mediapipe_cache", "mediapipe_to_model_axes"]


@dataclass(frozen=True)
class BuildData:
    """Inputs of :func:`~recon3d.morphable.build.build_model` (numpy). N photos, 468 MediaPipe points."""

    paths: list  # N image paths
    points: np.ndarray  # (N,468,3) MediaPipe normalised x, y, z
    sizes: np.ndarray  # (N,2) H, W
    lmk68: np.ndarray | None  # (N,68,2) 0-based manual landmarks, or None
    groups: dict  # MediaPipe landmark groups name -> vertex ids


def load_mediapipe_cache(path: str | Path, *, require_pts: bool = False) -> BuildData:
    """Read the ``.npz`` written by ``tools/build_mediapipe_cache.py``, keep photos with a face, attach
    the ``.pts`` files next to them (``(68, 2)`` 0-based pixels, float64).

    Raises:
        AssetError: ``require_pts`` and a photo has no ``.pts`` file.
        LandmarkFileError: a ``.pts`` file is malformed.
    """
    z = np.load(path, allow_pickle=False)
    keep = z["found"].astype(bool)
    paths = [str(p) for p, k in zip(z["paths"], keep, strict=False) if k]
    pts = []
    for p in paths:
        q = Path(p).with_suffix(".pts")
        pts.append(read_pts(q).numpy().astype(np.float64) if q.is_file() else None)
    have = all(p is not None for p in pts)
    if require_pts and not have:
        raise AssetError(f"load_mediapipe_cache(): some photos lack a .pts landmark file next to them (e.g. {paths[pts.index(None)]})")
    groups = {k[len("group_"):]: z[k].astype(np.int64) for k in z.files if k.startswith("group_")}
    return BuildData(paths, z["points"][keep].astype(np.float64), z["sizes"][keep], np.stack(pts) if have else None, groups)


def mediapipe_to_model_axes(points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """MediaPipe normalised points ``(N,P,3)`` -> pixel-scaled points in model axes ``(N,P,3)``.

    MediaPipe's (x*W, y*H, z*W) is a camera-like frame (x right, y down, z away from the camera);
    ``frontal_rotation`` (its own inverse) turns it into model axes (+X right = subject's left, +Y up,
    +Z towards the camera).
    """
    H, W = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
    cam = points * np.stack([W, H, W], 1)[:, None, :]
    R = frontal_rotation(torch.float64).numpy()
    return cam @ R.T
