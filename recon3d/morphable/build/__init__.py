"""Build a :class:`~recon3d.morphable.MorphableModel` from per-photo MediaPipe face meshes.

This is how recon3d's default model ``assets/recon3d_face_v1.npz`` is made (see ``docs/MODEL.md``);
``python -m pipelines.build_model`` runs it on any folder of photos. Steps:

1. MediaPipe Face Mesh points (468 per photo, run in a separate interpreter by
   ``tools/build_mediapipe_cache.py``) become 3D points in
   model axes (``frontal_rotation``: image x right -> +X, image y down -> +Y up, depth -> +Z out).
2. Generalised Procrustes (similarity) on MediaPipe's own rigid "procrustes landmark basis"; the
   mean is rotated onto MediaPipe's canonical mesh axes; the data are mirror-augmented with the
   vertex symmetry map, which makes the mean exactly symmetric; metres from a mean outer-eye-corner
   distance (ex-ex) of :attr:`BuildConfig.exex_m`.
3. Expression / identity split without identity labels: the identity part of each shape is what a
   linear regression from the *stable* region (forehead, nose, upper cheeks, away from eyes and brows)
   predicts; the residual's PCA is the expression basis; the identity basis is the PCA of the data
   with the expression subspace projected out (so the two bases are orthogonal).
4. Two Loop subdivisions (a linear operator applied to the mean and to every basis vector).
5. Albedo: per-vertex colours sampled at the projected vertices of front-facing vertices, 27-coefficient
   SH lighting removed per photo (alternating with a median albedo), EM-PCA with missing data.
6. Spherical UV layout, exactly mirror symmetric; learned iBUG-68 embedding; dynamic jaw contour
   candidates; region labels and photometric weights.

Modules: :mod:`.data` (inputs), :mod:`.builder` (the sequence), :mod:`.geometry`, :mod:`.albedo`,
:mod:`.landmarks` (embedding, contour, regions, held-out evaluation), :mod:`.figures` (docs figures).
An offline layer: nothing at inference time imports it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ...io.landmarks_file import read_pts as _read_pts
from .builder import BuildConfig, build_model
from .data import BuildData, load_mediapipe_cache, mediapipe_to_model_axes
from .landmarks import evaluate_landmark_fit

__all__ = [
    "BuildConfig", "BuildData", "load_mediapipe_cache", "mediapipe_to_model_axes", "build_model",
    "evaluate_landmark_fit",
]


def __getattr__(name: str):
    if name == "read_pts":  # deprecated: recon3d.io.landmarks_file.read_pts
        warnings.warn("recon3d.morphable.build.read_pts is deprecated; use recon3d.io.landmarks_file.read_pts "
                      "(a (68, 2) float32 tensor)", DeprecationWarning, stacklevel=2)
        return _read_pts_numpy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _read_pts_numpy(path) -> np.ndarray:
    """The old ``read_pts``: ``(68, 2)`` float64 numpy, 0-based."""
    return _read_pts(path).numpy().astype(np.float64)
