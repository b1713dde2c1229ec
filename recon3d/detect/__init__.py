"""recon3d.detect: face detection and 68-point iBUG landmarks.

Backends:

* ``"dlib"`` (default): dlib's HOG detector with fallbacks (upsampling, the MMOD CNN detector on
  a downscaled copy, a verified centre-box start for tight crops, then MTCNN,
  :mod:`recon3d.detect.mtcnn_backend`, for occluded faces) and dlib's 68-point shape
  predictor, from ``dlib-bin`` + ``face-recognition-models``. See :mod:`recon3d.detect.dlib_backend`.
* ``"recon3d"``: the same detector chain, then recon3d's own landmark regressor
  (``assets/recon3d_landmarks_v3.safetensors`` since 2026-12-04, trained on synthesized profile views;
  ``regressor="v1"`` or ``"v2"`` selects an earlier version), which handles large yaw; its landmarks are in the 3-D convention (see :class:`FaceDetection`).
  See :mod:`recon3d.detect.recon3d_backend`.
* ``"face_alignment"`` (optional): the ``face-alignment`` package, used only when its weights are
  already on disk; see :mod:`recon3d.detect.fa_backend`.

Landmarks are 0-based pixel centres of the input image (``recon3d/conventions.py``).

Example (not run as a doctest: it loads the dlib models)::

    from recon3d.io import load_image
    from recon3d.detect import detect_landmarks
    face = detect_landmarks(load_image("photo.jpg"))
    face.lmk_px  # (68, 2) float32
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch

from ..errors import NoFaceError
from .base import FaceDetection, image_to_uint8_rgb
from .dlib_backend import (
    CHAIN_V1_STAGES,
    DEFAULT_STAGES,
    DLIB_STAGES,
    MTCNN_STAGES,
    PLAIN_HOG,
    detect_faces_dlib,
)
from .fa_backend import detect_faces_fa
from .recon3d_backend import detect_faces_recon3d

__all__ = [
    "FaceDetection",
    "detect_faces",
    "detect_landmarks",
    "BACKENDS",
    "DLIB_STAGES",
    "DEFAULT_STAGES",
    "MTCNN_STAGES",
    "CHAIN_V1_STAGES",
    "PLAIN_HOG",
]

log = logging.getLogger(__name__)

#: Names accepted by ``backend=``.
BACKENDS = ("dlib", "recon3d", "face_alignment")


def _unwrap(image) -> tuple[torch.Tensor | np.ndarray, str | None]:
    # Accept a recon3d.io.LoadedImage without importing recon3d.io here.
    if hasattr(image, "image") and hasattr(image, "original_mode"):
        return image.image, image.name
    return image, None


def detect_faces(
    image: torch.Tensor | np.ndarray,
    *,
    backend: str = "dlib",
    all_faces: bool = False,
    stages: tuple[str, ...] | None = None,
    max_side: int = 1024,
    timings: dict[str, float] | None = None,
    rotations: tuple[int, ...] = (90, 270),
    equalize: bool = True,
    regressor: str | None = None,
) -> list[FaceDetection]:
    """Detect faces and their 68 landmarks.

    Args:
        image: ``(H, W, 3)`` (or ``(1, H, W, 3)``) float32 RGB in ``[0, 1]``, a uint8 array, or a
            :class:`recon3d.io.LoadedImage`.
        backend: ``"dlib"``, ``"recon3d"`` or ``"face_alignment"``.
        all_faces: return every face; by default only the largest.
        stages: dlib and recon3d: which detector stages of :data:`DLIB_STAGES` to run (default
            :data:`DEFAULT_STAGES`, which ends with the MTCNN cascade as the last resort;
            :data:`CHAIN_V1_STAGES` is the chain without it; :data:`PLAIN_HOG` is HOG alone).
        max_side: dlib only: HOG runs on a copy whose longest side is at most this.
        timings: if given, filled with milliseconds per stage (dlib only).
        rotations: dlib and recon3d: when the upright image gives no face, retry on copies turned
            by these angles (degrees counter-clockwise; multiples of 90) for photos lying on
            their side; the results are mapped back to the input's pixels and the method name
            gets ``+rot90`` etc. ``()`` disables the retry.
        equalize: dlib and recon3d: when that finds nothing either, retry once on a copy with an
            equalised brightness histogram (dark, low-contrast photos); method name ``+eq``.
        regressor: recon3d only: the landmark regressor's weights, a shipped version name
            (:data:`recon3d.nn.landmarks.REGRESSOR_VERSIONS`) or a file; default the shipped default.

    Returns:
        Detections sorted by box area, largest first (empty if no face).

    Raises:
        ShapeError: bad image shape or dtype.
        BackendUnavailableError: the backend (or its model files) is not available.
        ValueError: unknown backend or stage.
    """
    img, _ = _unwrap(image)
    u8 = image_to_uint8_rgb(img, "detect_faces()")
    chain = dict(all_faces=all_faces, stages=DEFAULT_STAGES if stages is None else tuple(stages), max_side=max_side,
                 timings=timings)
    if any(a % 90 for a in rotations):
        raise ValueError(f"detect_faces(): rotations must be multiples of 90 degrees, got {rotations}")
    if backend == "dlib":
        run = detect_faces_dlib
    elif backend == "recon3d":
        run = functools.partial(detect_faces_recon3d, weights=regressor)
    elif backend == "face_alignment":
        run = None
        raw = detect_faces_fa(u8)
    else:
        raise ValueError(f"detect_faces(): unknown backend {backend!r}; choose from {BACKENDS}")
    if run is not None:
        raw = run(u8, **chain)
        for angle in rotations if not raw else ():
            k = (angle // 90) % 4
            if k == 0:
                continue
            raw = [_unrotate(r, k, u8.shape[0], u8.shape[1]) for r in run(np.ascontiguousarray(np.rot90(u8, k)), **chain)]
            if raw:
                log.info("detect_faces(): no upright face; found one in the copy turned by %d degrees", angle)
                break
        if not raw and equalize:
            raw = [(*r[:3], f"{r[3]}+eq", *r[4:]) for r in run(equalize_luma(u8), **chain)]
    dets = []
    for r in raw:  # (box, score, lmk, method[, pose_deg]); a pose means the recon3d regressor
        box, score, lmk, method = r[:4]
        dets.append(FaceDetection(
            box_xyxy=torch.tensor(np.asarray(box, dtype=np.float32)),
            score=float(score),
            lmk_px=torch.tensor(np.asarray(lmk, dtype=np.float32)),
            method=method,
            landmarks_3d=len(r) > 4,
            pose_deg=torch.tensor(np.asarray(r[4], dtype=np.float32)) if len(r) > 4 else None,
        ))
    dets.sort(key=lambda d: -d.area)
    if not all_faces:
        dets = dets[:1]
    return dets


def equalize_luma(u8: np.ndarray) -> np.ndarray:
    """Histogram-equalise the brightness of an ``(H, W, 3)`` uint8 image, keeping the colours' ratios.

    >>> img = np.full((4, 4, 3), 40, np.uint8); img[:2] = 60
    >>> out = equalize_luma(img); int(out[0, 0, 0]) > 200 and int(out[3, 3, 0]) < int(out[0, 0, 0])
    True
    """
    f = u8.astype(np.float32)
    y = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    yi = np.clip(np.rint(y), 0, 255).astype(np.int64)
    cdf = np.cumsum(np.bincount(yi.ravel(), minlength=256)).astype(np.float64)
    lo = cdf[cdf > 0][0]
    lut = np.clip((cdf - lo) / max(cdf[-1] - lo, 1.0) * 255.0, 0, 255)
    gain = (lut[yi] + 1.0) / (y + 1.0)
    return np.clip(f * gain[..., None], 0, 255).astype(np.uint8)


def _rot_back(xy: np.ndarray, k: int, H: int, W: int) -> np.ndarray:
    """Pixel coordinates in ``np.rot90(img, k)`` (img ``H x W``) -> coordinates in ``img``.

    >>> _rot_back(np.array([[0.0, 0.0]]), 1, 4, 6).tolist()   # rot90 moves img's top-right corner to (0, 0)
    [[5.0, 0.0]]
    >>> _rot_back(np.array([[0.0, 0.0]]), 3, 4, 6).tolist()
    [[0.0, 3.0]]
    """
    x, y = xy[..., 0], xy[..., 1]
    if k == 1:
        return np.stack([W - 1 - y, x], -1)
    if k == 2:
        return np.stack([W - 1 - x, H - 1 - y], -1)
    return np.stack([y, H - 1 - x], -1)


def _unrotate(r: tuple, k: int, H: int, W: int) -> tuple:
    """Map one raw detection ``(box, score, lmk, method[, pose_deg])`` of the turned copy back."""
    box, score, lmk, method = r[:4]
    b = np.asarray(box, dtype=np.float64)
    corners = _rot_back(np.array([[b[0], b[1]], [b[2], b[3]]]), k, H, W)
    box_back = np.concatenate([corners.min(0), corners.max(0)])
    out = (box_back, score, _rot_back(np.asarray(lmk, dtype=np.float64), k, H, W), f"{method}+rot{90 * k}")
    if len(r) > 4:  # the regressor's pose: the copy was turned by 90k degrees in the image plane
        ypr = np.asarray(r[4], dtype=np.float64).copy()
        ypr[2] = (ypr[2] + _ROLL_SIGN * 90.0 * k + 180.0) % 360.0 - 180.0
        out = out + (ypr,)
    return out


#: roll in the input = roll in the copy turned by 90k degrees counter-clockwise + _ROLL_SIGN * 90k
#: (recon3d.conventions: positive roll turns the face counter-clockwise; tests/test_detect.py)
_ROLL_SIGN = -1.0


def detect_landmarks(
    image: torch.Tensor | np.ndarray,
    *,
    backend: str = "dlib",
    name: str | None = None,
    stages: tuple[str, ...] | None = None,
    max_side: int = 1024,
) -> FaceDetection:
    """The largest face in ``image`` and its 68 landmarks.

    Args:
        image: as for :func:`detect_faces`.
        backend: ``"dlib"`` or ``"face_alignment"``.
        name: how to call the image in the error message (defaults to the file name of a
            ``LoadedImage``, else ``"<image HxW>"``).
        stages: dlib stages, as for :func:`detect_faces`.
        max_side: as for :func:`detect_faces`.

    Returns:
        The largest :class:`FaceDetection`.

    Raises:
        NoFaceError: ``"no face found in <name>: ..."`` when every stage fails.
    """
    img, loaded_name = _unwrap(image)
    dets = detect_faces(img, backend=backend, all_faces=False, stages=stages, max_side=max_side)
    if not dets:
        shape = tuple(img.shape)
        label = name or loaded_name or f"<image {shape[-3]}x{shape[-2]}>"
        tried = ", ".join(DEFAULT_STAGES if stages is None else stages) if backend == "dlib" else backend
        raise NoFaceError(
            f"no face found in {label}: backend {backend!r} (tried {tried}) found nothing; "
            "supply landmarks with a .pts/.txt/.npy file, or crop the image around the face"
        )
    return dets[0]
