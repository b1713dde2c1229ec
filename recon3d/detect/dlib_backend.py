"""dlib face detection (HOG, MMOD CNN) and the 68-point shape predictor, with fallbacks.

Models come from the ``face-recognition-models`` package (installed with recon3d); they are
located through ``importlib`` without importing that package (whose ``__init__`` needs the
removed ``pkg_resources``), loaded lazily on first use and kept in the process-wide cache (:mod:`recon3d._cache`). Nothing is
downloaded.

The frontal HOG detector misses many faces with a large yaw. :func:`detect_faces_dlib` runs a
chain of stages and stops at the first that finds a face. :data:`DEFAULT_STAGES` is
``hog -> hog-upsampled -> cnn -> fallback-centre -> mtcnn`` (:data:`CHAIN_V1_STAGES` is the chain
without MTCNN, the default before 2026-12-01); the other two stages are opt-in because on
AFLW2000-3D they add almost nothing once the CNN stage runs (``docs/benchmarks/detect.md``):

1. ``"hog"``: HOG, no upsampling, SVM threshold 0.
2. ``"hog-upsampled"``: HOG on the image upsampled x2 (finds faces below ~80 px).
3. ``"hog-mirrored"`` (opt-in): HOG on the mirrored image (upsampled x2); the detector's side
   views are not exactly symmetric, so this recovers a few profiles.
4. ``"cnn"``: dlib's MMOD CNN detector on a copy downscaled so its longest side is ``cnn_side``
   (320) px: ~1.7 s per 450 px image on this CPU at full size, ~0.5-0.7 s at 320 px. It finds
   almost every profile, but dlib's 68-point predictor is frontal-only, so landmarks on faces
   with |yaw| > 60 deg are poor (NME ~ 25-35 %).
5. ``"fallback-lowthresh"`` (opt-in): the best HOG windows above a negative threshold, accepted
   only if the landmark verifier (below) is happy.
6. ``"fallback-centre"``: for tightly cropped inputs (aspect 0.75..1.33, like AFLW2000's
   450 x 450), the shape predictor started from a centred box and refined three times from its
   own landmarks, accepted only if the verifier is happy.
7. ``"mtcnn"``: the MTCNN cascade
   (:mod:`recon3d.detect.mtcnn_backend`, weights ``assets/recon3d_mtcnn_v1.safetensors``) on the
   HOG copy (faces >= 40 px, O-Net threshold 0.9); its boxes are mapped to the HOG box geometry
   and seed the shape predictor. It runs
   last, so only where every other stage found nothing; it finds faces behind masks, sunglasses
   and hands that the dlib detectors miss (``docs/benchmarks/detect.md``).

The verifier re-runs the shape predictor from jittered boxes (shifted by +-10 % and scaled by
0.9/1.1): on a face the landmarks stay anchored to the image features; on clutter or flat
regions they follow the box. The score is ``1 - spread / (0.8 * jitter)`` clipped to [0, 1]
(1: anchored, 0: follows the box); a box with almost no texture scores 0. Accepted at >= 0.6
(frontal AFLW faces: median 0.93; random non-face patches: max 0.42). When a stage returns
several windows, those with a score below 0.3 must also pass the verifier (removes weak HOG
false positives on clutter).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
import torch

from .._cache import cached
from ..conventions import mirror_image_x, mirror_points_px
from ..errors import BackendUnavailableError
from .base import box_from_landmarks, box_iou

__all__ = ["DLIB_STAGES", "DEFAULT_STAGES", "CHAIN_V1_STAGES", "MTCNN_STAGES", "PLAIN_HOG", "detect_faces_dlib", "dlib_model_path", "dlib_module"]

log = logging.getLogger(__name__)

#: All stages of the dlib chain, in the order they run.
DLIB_STAGES = ("hog", "hog-upsampled", "hog-mirrored", "cnn", "fallback-lowthresh", "fallback-centre", "mtcnn")
#: The chain before MTCNN joined it (the default until 2026-12-01): on AFLW2000-3D dev the mirrored
#: and low-threshold HOG stages add almost nothing once the CNN stage runs (docs/benchmarks/detect.md).
CHAIN_V1_STAGES = ("hog", "hog-upsampled", "cnn", "fallback-centre")
#: The stages run by default: the chain above, then MTCNN as the last resort (it runs only where the
#: others find nothing; +6.7 points of faces found behind synthetic occluders, +16 behind masks, no
#: change on 300-W or AFLW2000-3D and no false face on photos without one: docs/benchmarks/detect.md).
DEFAULT_STAGES = (*CHAIN_V1_STAGES, "mtcnn")
#: Alias of :data:`DEFAULT_STAGES` (the chain with MTCNN last).
MTCNN_STAGES = DEFAULT_STAGES
#: The single-stage configuration used as the baseline in benchmarks.
PLAIN_HOG = ("hog",)

# The MMOD box is used as is: mapping it to the HOG box geometry (median shift (0.03, 0.08) box
# sides, scale 1.05 on AFLW2000-3D dev) gave the same NME on frontal faces (4.04 %) and a worse
# one on profiles (22.0 % vs 19.6 %, 18 images), so the simpler identity is kept.
# Geometry of the HOG box relative to the tight landmark box (centre shift in units of the
# landmark box side, side ratio), fitted the same way; used to refine boxes from landmarks.
_LMK_TO_HOG = (-0.024, -0.068, 1.069)
_LOWTHRESH = -0.6
# With several detections, those scoring below this must also pass the verifier.
_STRONG_SCORE = 0.3
_VERIFY_MIN_SCORE = 0.6
_VERIFY_MIN_STD = 0.03
_MIRROR_UPSAMPLE = 1
# The MTCNN stage is stricter than MTCNN's own defaults (min face 20 px, O-Net 0.7): its only false faces
# on scikit-image's no-face photos (18-20 px, O-Net 0.77 / 0.85, in the equalised copies of coffee and
# immunohistochemistry) go, the occluded faces it adds (O-Net >= 0.91, >= 200 px) stay.
_MTCNN_MIN_FACE = 40
_MTCNN_THRESHOLDS = (0.6, 0.7, 0.9)


def dlib_model_path(filename: str) -> Path:
    """Path of a model file shipped in the ``face-recognition-models`` package.

    Raises:
        BackendUnavailableError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(
            "dlib backend: the 'face-recognition-models' package is not installed "
            "(pip install face-recognition-models)"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / filename
        if p.is_file():
            return p
    raise BackendUnavailableError(
        f"dlib backend: model file {filename} not found in face_recognition_models "
        f"({list(spec.submodule_search_locations)}); reinstall face-recognition-models"
    )


def dlib_module():
    """The ``dlib`` module (imported on first use: an optional dependency).

    Raises:
        BackendUnavailableError: dlib is not importable.
    """
    try:
        import dlib
    except ImportError as e:
        raise BackendUnavailableError(
            f"dlib backend: dlib is not importable ({e}); pip install dlib-bin"
        ) from e
    return dlib


def _hog():
    return cached(("dlib", "hog"), lambda: dlib_module().get_frontal_face_detector())


def _predictor():
    return cached(("dlib", "shape_predictor_68"), lambda: dlib_module().shape_predictor(
        str(dlib_model_path("shape_predictor_68_face_landmarks.dat"))))


def _cnn():
    return cached(("dlib", "mmod_cnn"), lambda: dlib_module().cnn_face_detection_model_v1(
        str(dlib_model_path("mmod_human_face_detector.dat"))))


def _predict(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    """68 landmarks (float64, 0-based pixel centres) from a ``[x0, y0, x1, y1]`` box."""
    dlib = dlib_module()
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = _predictor()(img, dlib.rectangle(x0, y0, x1, y1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _square(cx: float, cy: float, side: float) -> np.ndarray:
    h = side / 2.0
    return np.array([cx - h, cy - h, cx + h, cy + h])


def _remap(box: np.ndarray, geom: tuple[float, float, float]) -> np.ndarray:
    """Map a box to HOG-box geometry: centre shift (fractions of the side) and side ratio."""
    side = np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0))
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    return _square(cx + geom[0] * side, cy + geom[1] * side, geom[2] * side)


def _hog_box_from_landmarks(lmk: np.ndarray) -> np.ndarray:
    return _remap(box_from_landmarks(lmk), _LMK_TO_HOG)


def _mirror_box(box: np.ndarray, width: int) -> np.ndarray:
    """A box of the mirrored image mapped back (dlib rectangles are inclusive pixel indices)."""
    c = mirror_points_px(torch.tensor(box.reshape(2, 2)), width).numpy()
    return np.array([c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()], dtype=np.float64)


def _rects(rects) -> list[np.ndarray]:
    return [np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) for r in rects]


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR)))


def _verify(img: np.ndarray, box: np.ndarray, lmk: np.ndarray) -> float:
    """Landmark-stability score in [0, 1] (see the module docstring); 0 for textureless boxes."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = (int(np.clip(v, 0, m)) for v, m in zip(box, (w, h, w, h), strict=True))
    patch = img[y0:y1, x0:x1]
    if patch.size == 0 or float(patch.std()) / 255.0 < _VERIFY_MIN_STD:
        return 0.0
    side = float(np.sqrt((box[2] - box[0]) * (box[3] - box[1])))
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    jit = 0.1
    moves = [(jit, 0, 1), (-jit, 0, 1), (0, jit, 1), (0, -jit, 1), (0, 0, 1 - jit), (0, 0, 1 + jit)]
    preds = [lmk]
    for dx, dy, s in moves:
        preds.append(_predict(img, _square(cx + dx * side, cy + dy * side, s * side)))
    p = np.stack(preds)  # (K, 68, 2)
    spread = float(np.sqrt(((p - p.mean(0)) ** 2).sum(-1)).mean())
    # A landmark set glued to the box would move by about jit * side on average.
    return float(np.clip(1.0 - spread / (jit * side * 0.8), 0.0, 1.0))


def _nms(cands: list[tuple[np.ndarray, float]], iou: float = 0.3) -> list[tuple[np.ndarray, float]]:
    keep: list[tuple[np.ndarray, float]] = []
    for b, s in sorted(cands, key=lambda c: -c[1]):
        if all(box_iou(b, k[0]) < iou for k in keep):
            keep.append((b, s))
    return keep


def detect_faces_dlib(
    img: np.ndarray,
    *,
    all_faces: bool = False,
    stages: tuple[str, ...] = DEFAULT_STAGES,
    max_side: int = 1024,
    cnn_side: int = 320,
    timings: dict[str, float] | None = None,
) -> list[tuple[np.ndarray, float, np.ndarray, str]]:
    """Run the dlib stage chain on a uint8 RGB image.

    Args:
        img: ``(H, W, 3)`` uint8 RGB, C-contiguous.
        all_faces: keep every face found by the first successful stage (fallback stages give at
            most one face).
        stages: which stages to run, a subset of :data:`DLIB_STAGES` (run in that order).
        max_side: the HOG stages see a copy downscaled so its longest side is at most this.
        cnn_side: the CNN stage sees a copy downscaled so its longest side is at most this.
        timings: if given, filled with milliseconds per stage run (and ``"landmarks"``).

    Returns:
        ``[(box_xyxy (4,), score, lmk (68, 2), method), ...]`` in input pixels, unsorted.
    """
    unknown = set(stages) - set(DLIB_STAGES)
    if unknown:
        raise ValueError(f"detect_faces_dlib(): unknown stages {sorted(unknown)}; choose from {DLIB_STAGES}")
    t_ms = timings if timings is not None else {}
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    det_img = img if scale == 1.0 else _resize(img, scale)
    found: list[tuple[np.ndarray, float]] = []
    method = ""

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        t_ms[name] = t_ms.get(name, 0.0) + 1000.0 * (time.perf_counter() - t0)
        return out

    for stage in DLIB_STAGES:
        if stage not in stages:
            continue
        if stage == "hog":
            rects, scores, _ = timed(stage, _hog().run, det_img, 0, 0.0)
            found = [(b / scale, s) for b, s in zip(_rects(rects), scores, strict=True)]
        elif stage == "hog-upsampled":
            if max(det_img.shape[:2]) > 1400:
                continue
            rects, scores, _ = timed(stage, _hog().run, det_img, 1, 0.0)
            found = [(b / scale, s) for b, s in zip(_rects(rects), scores, strict=True)]
        elif stage == "hog-mirrored":
            mir = np.ascontiguousarray(mirror_image_x(torch.from_numpy(det_img)).numpy())
            up = _MIRROR_UPSAMPLE if max(det_img.shape[:2]) <= 1400 else 0
            rects, scores, _ = timed(stage, _hog().run, mir, up, 0.0)
            dw = det_img.shape[1]
            found = [(_mirror_box(b, dw) / scale, s) for b, s in zip(_rects(rects), scores, strict=True)]
        elif stage == "cnn":
            cs = min(1.0, cnn_side / max(h, w))
            small = img if cs == 1.0 else _resize(img, cs)
            dets = timed(stage, _cnn(), small, 0)
            found = [
                (
                    np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], dtype=np.float64)
                    / cs,
                    d.confidence,
                )
                for d in dets
            ]
        elif stage == "fallback-lowthresh":
            up = 1 if max(det_img.shape[:2]) <= 1400 else 0
            rects, scores, _ = timed(stage, _hog().run, det_img, up, _LOWTHRESH)
            cands = sorted(zip(_rects(rects), scores, strict=True), key=lambda c: -c[1])[:3]
            found = []
            for b, _s in cands:
                res = timed(stage, _refine_and_verify, img, b / scale)
                if res is not None:
                    found = [res[:2]]
                    break
        elif stage == "fallback-centre":
            if not 0.75 <= w / h <= 1.33:
                continue
            side = 0.5 * min(h, w)
            res = timed(stage, _refine_and_verify, img, _square((w - 1) / 2.0, (h - 1) / 2.0, side))
            found = [res[:2]] if res is not None else []
        elif stage == "mtcnn":
            from .mtcnn_backend import detect_faces_mtcnn, mtcnn_box_to_dlib

            dets = timed(stage, lambda im: detect_faces_mtcnn(im, min_face=_MTCNN_MIN_FACE, thresholds=_MTCNN_THRESHOLDS),
                         det_img)
            found = [(mtcnn_box_to_dlib(b) / scale, s) for b, s, _ in dets]
        if found:
            method = stage
            break
    if not found:
        return []
    found = _nms(found)
    if len(found) > 1:
        # Several windows: weak ones (HOG scores just above 0 are often clutter) must also pass
        # the landmark verifier; if none is convincing keep the best-scoring one.
        def convincing(c):
            return c[1] >= _STRONG_SCORE or _verify(img, c[0], _predict(img, c[0])) >= _VERIFY_MIN_SCORE

        found = [c for c in found if convincing(c)] or [max(found, key=lambda c: c[1])]
    if not all_faces:
        found = [max(found, key=lambda c: (c[0][2] - c[0][0]) * (c[0][3] - c[0][1]))]
    out = []
    t0 = time.perf_counter()
    for box, score in found:
        lmk = _predict(img, box)
        out.append((box, float(score), lmk, method))
    t_ms["landmarks"] = t_ms.get("landmarks", 0.0) + 1000.0 * (time.perf_counter() - t0)
    return out


def _refine_and_verify(img: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Predict from ``box``, re-box from the landmarks twice, verify; ``(box, score)`` or None."""
    for _ in range(3):
        lmk = _predict(img, box)
        box = _hog_box_from_landmarks(lmk)
    lmk = _predict(img, box)
    score = _verify(img, box, lmk)
    log.debug("fallback candidate %s verify score %.3f", np.round(box, 1).tolist(), score)
    if score < _VERIFY_MIN_SCORE:
        return None
    return box, score
