"""Face alignment to recon3d's one face template: the similarity from 68 landmarks to
:data:`TEMPLATE_68` and the warp of a photo onto it.

The training faces (:func:`recon3d.data.faces.load_faces` with ``align="detect"``), the generators
trained on them and every neural stage that works on aligned faces (inversion, restoration) share
this frame, so the template lives here, below both the data and the networks.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["TEMPLATE_68", "similarity_transform", "align_face"]

#: Where ``align="detect"`` puts the 68 iBUG landmarks: ``(68, 2)`` ``(x, y)`` in the unit square of
#: the output (0 and 1 are its edges; output pixel ``j`` spans ``[j, j + 1] / res``). Measured with
#: ``tools/measure_face_template.py`` on 200 photos of ``../shared/faces-128`` (198 faces found by
#: the default dlib chain): the 10 %-trimmed mean of each point, made left-right symmetric about
#: ``x = 0.5`` (the asymmetry removed was 0.010 at most), so detected-and-aligned photos match the
#: framing of faces-128 (eye centres near ``y = 0.30``, mouth near ``y = 0.71``, chin at ``0.99``)
#: and a flipped aligned face is still aligned.
TEMPLATE_68 = np.array([
    [0.0625, 0.3081], [0.0676, 0.4219], [0.0801, 0.5343], [0.1008, 0.6450],
    [0.1419, 0.7492], [0.2091, 0.8388], [0.2939, 0.9133], [0.3894, 0.9715],
    [0.5000, 0.9872], [0.6106, 0.9715], [0.7061, 0.9133], [0.7909, 0.8388],
    [0.8581, 0.7492], [0.8992, 0.6450], [0.9199, 0.5343], [0.9324, 0.4219],
    [0.9375, 0.3081], [0.1428, 0.2206], [0.1980, 0.1718], [0.2744, 0.1581],
    [0.3521, 0.1685], [0.4264, 0.1979], [0.5736, 0.1979], [0.6479, 0.1685],
    [0.7256, 0.1581], [0.8020, 0.1718], [0.8572, 0.2206], [0.5000, 0.2903],
    [0.5000, 0.3640], [0.5000, 0.4383], [0.5000, 0.5141], [0.4112, 0.5627],
    [0.4539, 0.5778], [0.5000, 0.5908], [0.5461, 0.5778], [0.5888, 0.5627],
    [0.2308, 0.3009], [0.2787, 0.2743], [0.3353, 0.2755], [0.3852, 0.3124],
    [0.3313, 0.3212], [0.2754, 0.3200], [0.6148, 0.3124], [0.6647, 0.2755],
    [0.7213, 0.2743], [0.7692, 0.3009], [0.7246, 0.3200], [0.6687, 0.3212],
    [0.3254, 0.6956], [0.3897, 0.6709], [0.4534, 0.6589], [0.5000, 0.6698],
    [0.5466, 0.6589], [0.6103, 0.6709], [0.6746, 0.6956], [0.6134, 0.7561],
    [0.5503, 0.7829], [0.5000, 0.7878], [0.4497, 0.7829], [0.3866, 0.7561],
    [0.3522, 0.6995], [0.4525, 0.6966], [0.5000, 0.7016], [0.5475, 0.6966],
    [0.6478, 0.6995], [0.5478, 0.7251], [0.5000, 0.7302], [0.4522, 0.7251],
], dtype=np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation; no reflection) taking the
    points ``src`` ``(N, 2)`` to ``dst`` (Umeyama 1991), as a ``(3, 3)`` matrix on ``(x, y, 1)``.

    >>> a = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> m = similarity_transform(a, 2.0 * a[:, ::-1] * [1, -1] + 3.0)  # turn, scale 2, shift
    >>> (np.round(m, 6) + 0.0).tolist()
    [[0.0, 2.0, 3.0], [-2.0, 0.0, 3.0], [0.0, 0.0, 1.0]]
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    var = (s0 ** 2).sum() / len(src)
    if var <= 1e-12:
        raise ValueError("similarity_transform(): the source points are all the same")
    u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    r = u @ np.diag(d) @ vt
    scale = (sig * d).sum() / var
    m = np.eye(3)
    m[:2, :2] = scale * r
    m[:2, 2] = md - scale * r @ ms
    return m


def align_face(image: np.ndarray | Image.Image, lmk_px: np.ndarray, res: int) -> np.ndarray:
    """Warp a photo so that its 68 landmarks land on :data:`TEMPLATE_68`: ``(3, res, res)`` uint8.

    Args:
        image: ``(H, W, 3)`` uint8 RGB (or a PIL RGB image).
        lmk_px: ``(68, 2)`` iBUG landmarks, 0-based pixel centres of ``image``.
        res: output side.

    The similarity (:func:`similarity_transform`) is fitted from the landmarks (as continuous
    coordinates, ``lmk + 0.5``) to ``TEMPLATE_68 * res``; the photo is first shrunk with Lanczos
    when the face would be reduced more than 2x (so the bicubic warp does not alias); pixels from
    outside the photo are black (as in faces-128's corners).
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    src = np.asarray(lmk_px, np.float64) + 0.5
    dst = TEMPLATE_68.astype(np.float64) * res
    m = similarity_transform(src, dst)
    scale = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    if scale < 0.5:
        w, h = pil.size
        nw, nh = max(1, round(w * 2 * scale)), max(1, round(h * 2 * scale))
        pil = pil.resize((nw, nh), Image.LANCZOS, reducing_gap=2.0)
        src = src * np.array([nw / w, nh / h])
        m = similarity_transform(src, dst)
    inv = np.linalg.inv(m)  # output -> input, PIL's continuous coordinates (pixel centres at +0.5)
    out = pil.transform((res, res), Image.AFFINE, tuple(inv[:2].ravel()), resample=Image.BICUBIC,
                        fillcolor=(0, 0, 0))
    return np.asarray(out, dtype=np.uint8).transpose(2, 0, 1)
