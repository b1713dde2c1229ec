"""Optional ``face_alignment`` (FAN, Bulat & Tzimiropoulos 2017) backend.

It is used only when the ``face-alignment`` package is installed *and* its weights are already
in ``torch.hub``'s checkpoint folder (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``): the 2D FAN landmark network (``2DFAN4_1.6-*.zip``) and the S3FD
face detector (``s3fd-*.pth``). The files are checked *before* the package is constructed, so nothing ever
tries to download; otherwise :class:`~recon3d.errors.BackendUnavailableError` says what is
missing and where to put it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from .._cache import cached
from ..errors import BackendUnavailableError

__all__ = ["face_alignment_checkpoints", "detect_faces_fa"]

log = logging.getLogger(__name__)

# face-alignment >= 1.3 on torch >= 1.6 loads "2DFAN4_1.6-c827573f02.zip" and
# "s3fd-619a316812.pth" from torch hub's checkpoint folder (downloading them when absent).
_REQUIRED = {"2DFAN4_1.6-": "2D FAN landmark network", "s3fd-": "S3FD face detector"}


def _checkpoint_dir() -> Path:
    """Where torch hub keeps checkpoints (``$TORCH_HOME/hub/checkpoints``, default
    ``~/.cache/torch``; ``$XDG_CACHE_HOME`` is honoured as torch does). Only a path: nothing is fetched."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
        home = os.path.join(cache, "torch")
    return Path(home) / "hub" / "checkpoints"


def face_alignment_checkpoints() -> dict[str, Path]:
    """Locate the face_alignment weights without importing or constructing anything.

    Returns:
        ``{"2DFAN4": path, "s3fd": path}``.

    Raises:
        BackendUnavailableError: the package is not installed or a weight file is absent.
    """
    if importlib.util.find_spec("face_alignment") is None:
        raise BackendUnavailableError(
            "face_alignment backend: the 'face-alignment' package is not installed "
            "(pip install face-alignment); use backend='dlib' (the default)"
        )
    d = _checkpoint_dir()
    found: dict[str, Path] = {}
    missing = []
    for prefix, what in _REQUIRED.items():
        hits = sorted(d.glob(f"{prefix}*")) if d.is_dir() else []
        if hits:
            found[prefix.rstrip("_-").split("_")[0]] = hits[-1]
        else:
            missing.append(f"{what} ({prefix}*)")
    if missing:
        raise BackendUnavailableError(
            f"face_alignment backend: weights not found in {d}: missing {', '.join(missing)}. recon3d never "
            "downloads; copy the files there (or set TORCH_HOME), or use backend='dlib' (the default)"
        )
    return found


def _model():
    return cached(("face_alignment", "fan"), _build_model)


def _build_model():
    face_alignment_checkpoints()
    import face_alignment

    lt = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
    return face_alignment.FaceAlignment(lt, device="cpu", flip_input=False, face_detector="sfd")


def detect_faces_fa(img: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray, str]]:
    """Faces and 68 landmarks from face_alignment on a uint8 ``(H, W, 3)`` RGB image.

    Returns:
        ``[(box_xyxy (4,), score, lmk (68, 2), "face_alignment"), ...]``.

    Raises:
        BackendUnavailableError: see :func:`face_alignment_checkpoints`.
    """
    fa = _model()
    res = fa.get_landmarks_from_image(img, return_bboxes=True)
    lmks, _scores, boxes = res if isinstance(res, tuple) else (res, None, None)
    out = []
    for i, lm in enumerate(lmks or []):
        lm = np.asarray(lm, dtype=np.float64)[:, :2]
        if boxes is not None and i < len(boxes):
            b = np.asarray(boxes[i], dtype=np.float64)
            box, score = b[:4], float(b[4]) if b.shape[0] > 4 else 1.0
        else:
            box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
            score = 1.0
        out.append((box, score, lm, "face_alignment"))
    return out
