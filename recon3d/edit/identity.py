"""Face identity descriptors for the editing benchmarks: dlib's 128-D ResNet descriptor
(``dlib_face_recognition_resnet_model_v1``, shipped in ``face-recognition-models``), computed on
the chip aligned by 68 landmarks. dlib's standard verification rule: same person when the
euclidean distance of two descriptors is below 0.6.

``face_descriptor(..., backend="torch")`` computes the same descriptor with recon3d's PyTorch port
(:mod:`recon3d.nn.identity`: our chip, 8-bit quantised as dlib's, and our network; within ~3e-4
of dlib's, see docs/BENCHMARKS.md "Identity network"); with ``lmk_px`` it needs no dlib at all.
Differentiable identity losses live in :mod:`recon3d.train.losses`.

dlib is imported on first use (optional dependency of the dlib detector backend); the models stay in
the process-wide cache (:mod:`recon3d._cache`).
"""

from __future__ import annotations

import logging

import numpy as np

from .._cache import cached
from .._checks import check_shapes
from ..detect.dlib_backend import dlib_model_path, dlib_module
from ..errors import ShapeError
from ._common import to_numpy

log = logging.getLogger(__name__)

__all__ = ["face_descriptor", "descriptor_distance", "descriptor_cosine", "DLIB_SAME_PERSON_DISTANCE"]

#: dlib's documented threshold: euclidean distance < 0.6 means the same person.
DLIB_SAME_PERSON_DISTANCE = 0.6


def _models():
    return cached(("dlib", "identity"), _load_models)


def _load_models():
    dlib = dlib_module()
    rec = dlib.face_recognition_model_v1(str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")))
    sp = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))
    return dlib, rec, sp, dlib.get_frontal_face_detector()


def _u8(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])


def face_descriptor(image, *, lmk_px=None, box=None, backend: str = "dlib") -> np.ndarray | None:
    """128-D dlib descriptor of the (largest) face of ``image``.

    Args:
        image: ``(H, W, 3)`` RGB, float in [0, 1] or uint8 (numpy or torch).
        lmk_px: optional ``(68, 2)`` landmarks (0-based pixels) used for the alignment; default:
            dlib's 68-point predictor on ``box``.
        box: optional ``[x0, y0, x1, y1]`` face box; default: dlib's HOG detector (upsampled once),
            else the landmarks' bounding box.
        backend: ``"dlib"`` (dlib's ``compute_face_descriptor``) or ``"torch"`` (recon3d's port,
            :func:`recon3d.nn.identity.load_identity_net`; same landmarks, rounded to whole pixels
            as dlib's ``full_object_detection`` holds them).

    Returns:
        ``(128,)`` float64, or None when no face is found.

    Raises:
        ShapeError: ``image`` is not ``(H, W, 3)`` (or ``(H, W, 4)``, alpha ignored), ``lmk_px`` not
            ``(68, 2)`` or ``box`` not 4 numbers.
        ValueError: unknown ``backend``.
    """
    if backend not in ("dlib", "torch"):
        raise ValueError(f"face_descriptor(): backend must be 'dlib' or 'torch', got {backend!r}")
    image, lmk_px, box = (None if x is None else to_numpy(x) for x in (image, lmk_px, box))
    dims = check_shapes("face_descriptor()", image=(image, "H W C"), lmk_px=(lmk_px, "68 2"), box=(box, "4"))
    if dims["C"] not in (3, 4):
        raise ShapeError(f"face_descriptor(): image must be (H, W, 3) (or (H, W, 4)), got {image.shape}")
    img = _u8(image)
    if backend == "torch" and lmk_px is not None:
        return _torch_descriptor(img, np.round(lmk_px.astype(np.float64)))
    dlib, rec, sp, det = _models()
    if lmk_px is not None:
        pts = lmk_px.astype(np.float64)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
        shape = dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
    else:
        if box is not None:
            rect = dlib.rectangle(*[int(v) for v in box])
        else:
            dets = det(img, 1)
            if len(dets) == 0:
                return None
            rect = max(dets, key=lambda r: r.width() * r.height())
        shape = sp(img, rect)
    if backend == "torch":
        return _torch_descriptor(img, np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
    return np.asarray(rec.compute_face_descriptor(img, shape), dtype=np.float64)


def _torch_descriptor(img_u8: np.ndarray, pts: np.ndarray) -> np.ndarray:
    import torch

    from ..nn.identity import extract_chip, face_chip_transform, load_identity_net

    x = torch.from_numpy(img_u8.copy()).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        chip = extract_chip(x, face_chip_transform(pts)[None], quantize=True)
        return to_numpy(load_identity_net()(chip)[0]).astype(np.float64)


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two descriptors (dlib's metric).

    >>> descriptor_distance(np.ones(2), np.zeros(2))
    1.4142135623730951
    """
    a, b = np.asarray(a), np.asarray(b)
    check_shapes("descriptor_distance()", a=(a, "D"), b=(b, "D"))
    return float(np.linalg.norm(a - b))


def descriptor_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two descriptors.

    >>> descriptor_cosine(np.array([1.0, 0]), np.array([1.0, 1.0]))
    0.7071067811865475
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    check_shapes("descriptor_cosine()", a=(a, "D"), b=(b, "D"))
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
