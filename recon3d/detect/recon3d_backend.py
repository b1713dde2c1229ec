"""The ``"recon3d"`` landmark backend: dlib's detector chain finds the faces (boxes and rough
landmarks, see :mod:`recon3d.detect.dlib_backend`), then recon3d's own regressor
(:mod:`recon3d.nn.landmarks`, trained on synthesized large-pose views) replaces the landmarks.

Its landmarks are in the 3-D convention of AFLW2000-3D (jaw points on the 3-D jaw line even when
hidden), so :class:`~recon3d.detect.FaceDetection` marks them ``landmarks_3d=True`` and the
reconstruct pipeline fits them with fixed jaw points.
"""

from __future__ import annotations

import time

import numpy as np

from ..nn.landmarks import load_regressor
from ..ops.crop import crop_box_from_landmarks
from .dlib_backend import detect_faces_dlib

__all__ = ["detect_faces_recon3d"]


def detect_faces_recon3d(img: np.ndarray, *, all_faces: bool, stages: tuple[str, ...], max_side: int,
                         timings: dict[str, float] | None = None, weights: str | None = None):
    """Like :func:`~recon3d.detect.dlib_backend.detect_faces_dlib`, with the regressor's landmarks.

    Returns a list of ``(box, score, lmk (68, 2), method, pose_deg (3,))``.

    Raises:
        AssetError: the regressor weights are missing or corrupt.
    """
    reg = load_regressor(weights)
    raw = detect_faces_dlib(img, all_faces=all_faces, stages=stages, max_side=max_side, timings=timings)
    out = []
    t0 = time.perf_counter()
    for box, score, lmk, method in raw:
        r = reg(img, crop_box_from_landmarks(np.asarray(lmk, dtype=np.float64)))
        out.append((box, score, r.lmk_px, f"{method}+recon3d", r.pose_deg))
    if timings is not None:
        timings["regressor"] = (time.perf_counter() - t0) * 1000.0
    return out
