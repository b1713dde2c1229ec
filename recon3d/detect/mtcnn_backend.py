"""The MTCNN cascade (Zhang et al. 2016) on recon3d's port of its three nets (:mod:`recon3d.nn.mtcnn`).

1. **Pyramid**: the image is scaled by ``12 / min_face * factor**k`` (``factor`` 0.709) while its
   short side stays >= 12 px; P-Net scores every 12 x 12 window (stride 2) of every level. Windows
   above ``thresholds[0]`` are kept, NMS'd per level (IoU 0.5) and over all levels (0.7), moved by
   their regression and squared.
2. **R-Net** rescores each square resampled to 24 x 24 (zero padding outside the image):
   ``thresholds[1]``, NMS 0.7, regression, squaring.
3. **O-Net** on 48 x 48: ``thresholds[2]``, regression, five landmarks, NMS 0.7 on
   intersection-over-minimum (drops boxes nested in a bigger one).

Boxes and landmarks are returned in the input's pixels, 0-based pixel centres
(``recon3d/conventions.py``): a box ``[x0, y0, x1, y1]`` spans the pixel edges ``x0 - 0.5 .. x1 + 0.5``.
MTCNN's box is square and spans brows to chin; :func:`mtcnn_box_to_dlib` maps it to the geometry
of dlib's HOG box, which dlib's shape predictor expects (measured on 300-W HELEN test).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..nn.mtcnn import MTCNN_NETS, normalise_mtcnn
from ..nn.registry import load_network

__all__ = ["detect_faces_mtcnn", "mtcnn_box_to_dlib", "MTCNN_THRESHOLDS", "MTCNN_FACTOR", "MTCNN_MIN_FACE"]

#: P-Net, R-Net and O-Net score thresholds (the paper's / reference implementation's defaults)
MTCNN_THRESHOLDS = (0.6, 0.7, 0.7)
#: pyramid scale factor between levels
MTCNN_FACTOR = 0.709
#: smallest face side searched, in input pixels
MTCNN_MIN_FACE = 20

# dlib HOG box relative to the MTCNN box: centre shift (x, y) in units of the MTCNN side, side ratio
# (medians over the first 120 HELEN test photos, 117 faces both find; spread 0.08 / 0.04 / 0.08).
_MTCNN_TO_DLIB = (0.021, 0.078, 0.921)


def _nms(boxes: np.ndarray, scores: np.ndarray, thresh: float, mode: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (best score first).

    >>> b = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], float)
    >>> _nms(b, np.array([0.9, 0.8, 0.7]), 0.5).tolist()
    [0, 2]
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x0, y0, x1, y1 = boxes.T
    area = (x1 - x0) * (y1 - y0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / np.maximum(denom, 1e-9) <= thresh]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Squares with the boxes' centres and longer sides.

    >>> _square(np.array([[0.0, 0.0, 4.0, 2.0]])).tolist()
    [[0.0, -1.0, 4.0, 3.0]]
    """
    c = 0.5 * (boxes[:, :2] + boxes[:, 2:4])
    s = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None]
    return np.concatenate([c - 0.5 * s, c + 0.5 * s], 1)


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Move each box edge by ``reg`` (``dx0, dy0, dx1, dy1``) times the box's width / height."""
    wh = np.concatenate([boxes[:, 2:4] - boxes[:, :2]] * 2, 1)
    return boxes + reg * wh


def _windows(img: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
    """``(N, 3, size, size)`` crops of ``img`` (``(3, H, W)``, normalised) at the edge-coordinate
    ``boxes``, zero (= grey 127.5) outside the image, area-resampled."""
    _, H, W = img.shape
    out = img.new_zeros((len(boxes), 3, size, size))
    for n, b in enumerate(np.rint(boxes).astype(np.int64)):
        x0, y0, x1, y1 = b
        if x1 <= x0 or y1 <= y0:
            continue
        patch = img.new_zeros((3, y1 - y0, x1 - x0))
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        if sx1 > sx0 and sy1 > sy0:
            patch[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[:, sy0:sy1, sx0:sx1]
        out[n] = F.interpolate(patch[None], size=(size, size), mode="area")[0]
    return out


def _pyramid_scales(h: int, w: int, min_face: float, factor: float) -> list[float]:
    """Scales of the image pyramid.

    >>> [round(s, 3) for s in _pyramid_scales(60, 80, 20, 0.709)]
    [0.6, 0.425, 0.302, 0.214]
    """
    m = 12.0 / min_face
    side = min(h, w) * m
    scales = []
    while side >= 12.0:
        scales.append(m)
        m *= factor
        side *= factor
    return scales


@torch.no_grad()
def detect_faces_mtcnn(
    img: np.ndarray,
    *,
    min_face: float = MTCNN_MIN_FACE,
    thresholds: tuple[float, float, float] = MTCNN_THRESHOLDS,
    factor: float = MTCNN_FACTOR,
    weights: str | None = None,
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """Run the MTCNN cascade on one image.

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        min_face: smallest face side searched, in pixels (> 0).
        thresholds: P-Net, R-Net, O-Net probability thresholds, each in ``[0, 1]``.
        factor: pyramid scale factor in ``(0, 1)``.
        weights: a converted weights file (default: the shipped ``recon3d_mtcnn_v1.safetensors``).

    Returns:
        ``[(box_xyxy (4,), probability, pts5 (5, 2)), ...]`` best first, in input pixels (0-based
        centres); landmarks: the eye, eye, nose tip, mouth corner, mouth corner (image-left first).

    Raises:
        ValueError: bad ``img``, ``min_face``, ``thresholds`` or ``factor``.
        AssetError: the weights are missing or corrupt.
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        got = f"{img.shape} {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"detect_faces_mtcnn(): img must be an (H, W, 3) uint8 RGB array, got {got}")
    if not min_face > 0 or not 0 < factor < 1 or len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
        raise ValueError(f"detect_faces_mtcnn(): need min_face > 0, 0 < factor < 1 and three thresholds in [0, 1]; "
                         f"got min_face={min_face}, factor={factor}, thresholds={thresholds}")
    nets, _ = load_network(MTCNN_NETS, weights)
    H, W = img.shape[:2]
    x = normalise_mtcnn(torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1))

    # 1. P-Net over the pyramid
    cands = []
    for s in _pyramid_scales(H, W, min_face, factor):
        hs, ws = int(math.ceil(H * s)), int(math.ceil(W * s))
        level = F.interpolate(x[None], size=(hs, ws), mode="area")
        prob, reg = nets.pnet(level)
        prob, reg = prob[0].numpy(), reg[0].numpy()
        iy, ix = np.nonzero(prob > thresholds[0])
        if iy.size == 0:
            continue
        boxes = np.stack([2 * ix, 2 * iy, 2 * ix + 12, 2 * iy + 12], 1).astype(np.float64) / s
        score = prob[iy, ix].astype(np.float64)
        r = reg[:, iy, ix].T.astype(np.float64)
        k = _nms(boxes, score, 0.5)
        cands.append(np.concatenate([boxes[k], score[k, None], r[k]], 1))
    if not cands:
        return []
    c = np.concatenate(cands)
    c = c[_nms(c[:, :4], c[:, 4], 0.7)]
    boxes = _square(_regress(c[:, :4], c[:, 5:9]))

    # 2. R-Net
    prob, reg = nets.rnet(_windows(x, boxes, 24))
    ok = prob.numpy() > thresholds[1]
    boxes, score, reg = boxes[ok], prob.numpy()[ok].astype(np.float64), reg.numpy()[ok].astype(np.float64)
    if len(boxes) == 0:
        return []
    k = _nms(boxes, score, 0.7)
    boxes = _square(_regress(boxes[k], reg[k]))

    # 3. O-Net
    prob, reg, pts = nets.onet(_windows(x, boxes, 48))
    ok = prob.numpy() > thresholds[2]
    boxes, score = boxes[ok], prob.numpy()[ok].astype(np.float64)
    reg, pts = reg.numpy()[ok].astype(np.float64), pts.numpy()[ok].astype(np.float64)
    if len(boxes) == 0:
        return []
    wh = boxes[:, 2:4] - boxes[:, :2]
    pts5 = np.stack([boxes[:, None, 0] + pts[:, :5] * wh[:, None, 0], boxes[:, None, 1] + pts[:, 5:] * wh[:, None, 1]], -1)
    boxes = _regress(boxes, reg)
    k = _nms(boxes, score, 0.7, mode="min")
    # edge coordinates -> 0-based pixel centres
    return [(boxes[i] + np.array([0.0, 0.0, -1.0, -1.0]), float(score[i]), pts5[i] - 0.5) for i in k]


def mtcnn_box_to_dlib(box: np.ndarray) -> np.ndarray:
    """An MTCNN box mapped to the geometry of dlib's HOG box (square), the start box of dlib's
    shape predictor.

    >>> np.round(mtcnn_box_to_dlib(np.array([0.0, 0.0, 100.0, 100.0])), 2).tolist()
    [6.05, 11.75, 98.15, 103.85]
    """
    b = np.asarray(box, dtype=np.float64)
    side = 0.5 * ((b[2] - b[0]) + (b[3] - b[1]))
    dx, dy, sr = _MTCNN_TO_DLIB
    cx, cy = 0.5 * (b[0] + b[2]) + dx * side, 0.5 * (b[1] + b[3]) + dy * side
    half = 0.5 * sr * side
    return np.array([cx - half, cy - half, cx + half, cy + half])
