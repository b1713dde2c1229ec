"""Backend-independent types and helpers for face detection and 68-point landmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ShapeError

__all__ = ["FaceDetection", "image_to_uint8_rgb", "box_iou", "box_from_landmarks"]


@dataclass(frozen=True, eq=False)
class FaceDetection:
    """One detected face.

    Attributes:
        box_xyxy: ``(4,)`` float32 ``[x0, y0, x1, y1]`` in pixels of the input image (x right,
            y down; the box of the detector that found the face, or of the landmarks for
            landmark-driven fallbacks).
        score: detector confidence. Only comparable within one ``method`` (HOG SVM margin,
            CNN (MMOD) confidence, or a landmark-stability score for fallbacks).
        lmk_px: ``(68, 2)`` float32 iBUG-68 landmarks, 0-based pixel centres of the input image.
        method: which stage found the face: ``"hog"``, ``"hog-upsampled"``, ``"hog-mirrored"``,
            ``"cnn"``, ``"fallback-lowthresh"``, ``"fallback-centre"``, ``"mtcnn"`` (dlib backend) or
            ``"face_alignment"``; ``"<stage>+recon3d"`` for the ``recon3d`` backend.
        landmarks_3d: the landmarks follow the 3-D convention of AFLW2000-3D (jaw points on the
            3-D jaw line even where it is hidden; ``recon3d`` backend) rather than the visible
            outline (dlib, face-alignment, 300-W annotations).
        pose_deg: ``(3,)`` head pose (yaw, pitch, roll) in degrees when the backend estimates it.
    """

    box_xyxy: torch.Tensor
    score: float
    lmk_px: torch.Tensor
    method: str
    landmarks_3d: bool = False
    pose_deg: torch.Tensor | None = None

    @property
    def area(self) -> float:
        """Box area in pixels squared."""
        b = self.box_xyxy
        return float((b[2] - b[0]).clamp(min=0) * (b[3] - b[1]).clamp(min=0))


def image_to_uint8_rgb(image: torch.Tensor | np.ndarray, where: str) -> np.ndarray:
    """Convert an ``(H, W, 3)`` (or ``(1, H, W, 3)``) float ``[0, 1]`` tensor or uint8 array to a
    C-contiguous ``(H, W, 3)`` uint8 numpy array, as dlib and most detectors expect.

    Raises:
        ShapeError: wrong shape or dtype.

    >>> image_to_uint8_rgb(torch.ones(2, 2, 3), "f()").dtype.name
    'uint8'
    """
    if isinstance(image, torch.Tensor):
        a = image.detach().cpu()
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim != 3 or a.shape[-1] != 3:
            raise ShapeError(f"{where}: image must be (H, W, 3) RGB, got {tuple(image.shape)}")
        if a.dtype == torch.uint8:
            return np.ascontiguousarray(a.numpy())
        if not a.is_floating_point():
            raise ShapeError(f"{where}: image must be float in [0, 1] or uint8, got {a.dtype}")
        return np.ascontiguousarray((a.float().clamp(0, 1) * 255.0).round().to(torch.uint8).numpy())
    a = np.asarray(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ShapeError(f"{where}: image must be (H, W, 3) RGB, got {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating):
        return np.ascontiguousarray(np.round(np.clip(a, 0, 1) * 255.0).astype(np.uint8))
    raise ShapeError(f"{where}: image must be float in [0, 1] or uint8, got {a.dtype}")


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes.

    >>> round(box_iou(np.array([0, 0, 2, 2]), np.array([1, 0, 3, 2])), 3)
    0.333
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0


def box_from_landmarks(lmk: np.ndarray) -> np.ndarray:
    """Tight ``[x0, y0, x1, y1]`` box of ``(L, 2)`` points.

    >>> box_from_landmarks(np.array([[1.0, 2.0], [3.0, 5.0]])).tolist()
    [1.0, 2.0, 3.0, 5.0]
    """
    return np.array([lmk[:, 0].min(), lmk[:, 1].min(), lmk[:, 0].max(), lmk[:, 1].max()], dtype=np.float64)
