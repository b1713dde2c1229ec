"""A small, seeded, symmetric face-like 3D morphable model for tests, examples and benchmarks.

The toy model is built procedurally (no data files): a height field over a cylinder-like
patch (15 x 19 vertices = 285 verts, 504 triangles) with nose, brow, eye-socket, lip and chin
bumps, in metres, in the model frame of :mod:`recon3d.conventions` (+X the subject's left,
+Y up, +Z out of the face). It has every part a real model has:

* ``shape_basis`` (12 components, smooth, 10 mirror-symmetric + 2 antisymmetric, orthogonal,
  scaled by decreasing standard deviations from 4 mm RMS), ``expr_basis`` (6 localised
  expressions: jaw open, smile, brow raise, eye close, pucker, one-sided smile), and
  ``albedo_basis`` (6 colour components: 2 global, 4 localised: lips, brows, cheeks, forehead);
* a mirror-symmetric triangulation, ``sym_vertex`` and a UV layout symmetric about u = 0.5;
* an iBUG-68 landmark embedding (triangle + barycentrics) at plausible positions;
* ``contour_verts`` (17, K): for each jaw landmark, candidate vertices along its grid row from
  the frontal outline inwards (used by the dynamic jaw contour of :mod:`recon3d.fitting`);
* ``region_labels`` and ``face_weight``.

Only the random parts of the shape basis depend on ``seed``; the geometry itself is fixed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..conventions import mirror_model_x
from .model import MorphableModel

__all__ = ["make_toy_model", "TOY_GRID"]

#: (columns, rows) of the toy model's vertex grid; vertex index = row * columns + column.
TOY_GRID = (15, 19)

_A = 0.075  # half width (m): x = A sin(theta)
_C = 0.07  # horizontal curvature radius (m)
_THETA_MAX = math.radians(78.0)
_Y_RANGE = (-0.095, 0.075)


def _gauss(x, y, cx, cy, sx, sy):
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _heights(x: np.ndarray, y: np.ndarray, theta: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    z = _C * (np.cos(theta) - 1.0) - 0.03 * (y / 0.09) ** 2
    z = z + 0.020 * _gauss(x, y, 0.0, 0.002, 0.010, 0.020)  # nose ridge
    z = z + 0.008 * _gauss(x, y, 0.0, -0.012, 0.008, 0.008)  # nose tip
    z = z + 0.006 * _gauss(ax, y, 0.032, 0.046, 0.018, 0.008)  # brows
    z = z - 0.008 * _gauss(ax, y, 0.032, 0.028, 0.013, 0.009)  # eye sockets
    z = z + 0.006 * _gauss(x, y, 0.0, -0.046, 0.022, 0.010)  # lips
    z = z + 0.006 * _gauss(x, y, 0.0, -0.080, 0.020, 0.012)  # chin
    return z


def _landmarks_xy() -> np.ndarray:
    """iBUG-68 landmark positions (x, y) in metres on the mean face (x < 0: subject's right)."""
    p = np.zeros((68, 2))
    for k in range(17):  # jaw, from the subject's right ear (x < 0) round the chin to the left
        phi = -math.pi / 2 + math.pi * k / 16
        p[k] = (0.068 * math.sin(phi), 0.02 - 0.10 * math.cos(phi))
    right_brow = [(-0.055, 0.043), (-0.045, 0.050), (-0.034, 0.052), (-0.023, 0.050), (-0.012, 0.046)]
    p[17:22] = right_brow
    p[22:27] = [(-x, y) for x, y in right_brow[::-1]]
    p[27:31] = [(0.0, 0.028), (0.0, 0.015), (0.0, 0.002), (0.0, -0.012)]
    p[31:36] = [(-0.015, -0.022), (-0.008, -0.025), (0.0, -0.027), (0.008, -0.025), (0.015, -0.022)]
    right_eye = [(-0.046, 0.027), (-0.037, 0.032), (-0.026, 0.032), (-0.018, 0.027), (-0.026, 0.024), (-0.037, 0.024)]
    p[36:42] = right_eye
    # left eye 42..47 = mirrors of 39, 38, 37, 36, 41, 40
    p[42:48] = [(-right_eye[i][0], right_eye[i][1]) for i in (3, 2, 1, 0, 5, 4)]
    p[48:60] = [(-0.025, -0.045), (-0.016, -0.039), (-0.007, -0.036), (0.0, -0.037), (0.007, -0.036), (0.016, -0.039),
                (0.025, -0.045), (0.016, -0.053), (0.007, -0.056), (0.0, -0.057), (-0.007, -0.056), (-0.016, -0.053)]
    p[60:68] = [(-0.020, -0.045), (-0.008, -0.043), (0.0, -0.043), (0.008, -0.043), (0.020, -0.045),
                (0.008, -0.047), (0.0, -0.047), (-0.008, -0.047)]
    return p


def make_toy_model(seed: int = 0) -> MorphableModel:
    """Build the toy morphable model (285 vertices, S=12, E=6, T=6).

    Args:
        seed: seed of the random smooth shape components (the mean face is fixed).

    Returns:
        A :class:`~recon3d.morphable.MorphableModel` on the CPU, float32.

    >>> m = make_toy_model()
    >>> m.n_verts, m.n_shape, m.n_expr, m.n_albedo, tuple(m.contour_verts.shape)[0]
    (285, 12, 6, 6, 17)
    >>> bool((m.sym_vertex[m.sym_vertex] == torch.arange(m.n_verts)).all())
    True
    """
    nc, nr = TOY_GRID
    theta_1d = np.linspace(-_THETA_MAX, _THETA_MAX, nc)
    y_1d = np.linspace(_Y_RANGE[0], _Y_RANGE[1], nr)
    th, yy = np.meshgrid(theta_1d, y_1d)  # (nr, nc), row 0 at the bottom (y min)
    xx = _A * np.sin(th)
    zz = _heights(xx, yy, th)
    mean = np.stack([xx, yy, zz], -1).reshape(-1, 3)
    V = mean.shape[0]
    col = np.tile(np.arange(nc), nr)
    row = np.repeat(np.arange(nr), nc)
    sym = row * nc + (nc - 1 - col)

    # -- mirror-symmetric triangulation (CCW seen from +Z) ----------------------------------------
    faces = []
    half = (nc - 1) // 2
    for j in range(nr - 1):
        for i in range(nc - 1):
            v00, v10, v01, v11 = j * nc + i, j * nc + i + 1, (j + 1) * nc + i, (j + 1) * nc + i + 1
            if i < half:  # diagonal v00-v11
                faces += [(v00, v10, v11), (v00, v11, v01)]
            else:  # mirrored diagonal v10-v01
                faces += [(v00, v10, v01), (v10, v11, v01)]
    faces = np.asarray(faces, dtype=np.int64)

    uv = np.stack([(col + 0.5) / nc, (row + 0.5) / nr], -1)  # symmetric about u = 0.5

    # -- landmark embedding ------------------------------------------------------------------------
    lmk_xy = _landmarks_xy()
    dth = theta_1d[1] - theta_1d[0]
    dy = y_1d[1] - y_1d[0]
    lmk_faces = np.zeros(68, dtype=np.int64)
    lmk_bary = np.zeros((68, 3))
    for k, (x, y) in enumerate(lmk_xy):
        u = (math.asin(x / _A) - theta_1d[0]) / dth
        w = (y - y_1d[0]) / dy
        i, j = min(int(u), nc - 2), min(int(w), nr - 2)
        s, t = u - i, w - j
        cell = 2 * (j * (nc - 1) + i)
        if i < half:
            if s >= t:
                lmk_faces[k], lmk_bary[k] = cell, (1 - s, s - t, t)
            else:
                lmk_faces[k], lmk_bary[k] = cell + 1, (1 - t, s, t - s)
        else:
            if s + t <= 1:
                lmk_faces[k], lmk_bary[k] = cell, (1 - s - t, s, t)
            else:
                lmk_faces[k], lmk_bary[k] = cell + 1, (1 - t, s + t - 1, 1 - s)

    # -- dynamic contour candidates: the jaw landmark's grid row, frontal outline inwards ------------
    cands = []
    for k in range(17):
        x, y = lmk_xy[k]
        j = int(round((y - y_1d[0]) / dy))
        rowv = np.arange(j * nc, (j + 1) * nc)
        if k == 8:
            cands.append([int(rowv[np.argmin(np.abs(mean[rowv, 0] - x))])])
            continue
        side = np.sign(x)
        keep = rowv[(np.sign(mean[rowv, 0]) == side) & (np.abs(mean[rowv, 0]) <= abs(x) + 0.5 * _A * dth)
                    & (np.abs(mean[rowv, 0]) >= 0.25 * abs(x))]
        keep = keep[np.argsort(-np.abs(mean[keep, 0]))]  # outermost first
        cands.append([int(v) for v in keep])
    Kc = max(len(c) for c in cands)
    contour = np.full((17, Kc), -1, dtype=np.int64)
    for k, c in enumerate(cands):
        contour[k, : len(c)] = c

    # -- regions, weights, albedo ------------------------------------------------------------------
    x, y, ax = mean[:, 0], mean[:, 1], np.abs(mean[:, 0])
    jaw_y = 0.02 - 0.10 * np.sqrt(np.clip(1 - (x / 0.068) ** 2, 0, 1))
    inside = (ax <= 0.068) & (y >= jaw_y - 0.004)
    labels = np.where(inside, 1, 0).astype(np.int8)
    labels[inside & (((ax - 0.032) / 0.016) ** 2 + ((y - 0.028) / 0.007) ** 2 <= 1)] = 2
    labels[inside & (((ax - 0.034) / 0.024) ** 2 + ((y - 0.048) / 0.006) ** 2 <= 1)] = 3
    labels[inside & ((x / 0.028) ** 2 + ((y + 0.046) / 0.012) ** 2 <= 1)] = 4
    labels[inside & ((x / 0.016) ** 2 + ((y + 0.005) / 0.025) ** 2 <= 1)] = 5
    face_weight = np.select([labels == 0, (labels == 2) | (labels == 3)], [0.0, 0.5], 1.0)
    colours = {0: (0.70, 0.52, 0.44), 1: (0.78, 0.57, 0.47), 2: (0.45, 0.40, 0.40), 3: (0.35, 0.25, 0.20),
               4: (0.70, 0.36, 0.36), 5: (0.80, 0.58, 0.48)}
    albedo_mean = np.stack([np.asarray(colours[int(lab)]) for lab in labels])

    # -- shape basis: smooth fields, orthogonalised, 10 symmetric + 2 antisymmetric ------------------
    rng = np.random.default_rng(seed)
    mean_t = torch.from_numpy(mean)

    def mirrored(field: np.ndarray) -> np.ndarray:  # field evaluated at the mirror vertex, mirrored
        return mirror_model_x(torch.from_numpy(field[sym])).numpy()

    fields = [
        np.stack([x, 0 * x, 0 * x], -1),  # face width
        np.stack([0 * x, y, 0 * x], -1),  # face height
        np.stack([0 * x, 0 * x, mean[:, 2] - mean[:, 2].mean()], -1),  # depth
        np.stack([0 * x, 0 * x, _gauss(x, y, 0.0, 0.0, 0.012, 0.025)], -1),  # nose
    ]
    while len(fields) < 12:
        f = np.zeros((V, 3))
        for _ in range(5):
            c = rng.uniform([-0.07, -0.09], [0.07, 0.07])
            sig = rng.uniform(0.02, 0.04)
            f += rng.normal(size=3)[None] * _gauss(x, y, c[0], c[1], sig, sig)[:, None]
        anti = len(fields) >= 10
        fields.append(0.5 * (f - mirrored(f)) if anti else 0.5 * (f + mirrored(f)))
    q, _ = np.linalg.qr(np.stack([f.reshape(-1) for f in fields], 1))  # orthonormal columns (3V, 12)
    std = 0.004 * 0.85 ** np.arange(12)  # RMS per-vertex displacement of one sigma (m)
    shape_basis = (q.T.reshape(12, V, 3) * np.sqrt(V)) * std[:, None, None]
    del mean_t

    # -- expression basis (one sigma each, metres) ---------------------------------------------------
    sx = np.sign(x)
    lower = 1 / (1 + np.exp(-(-0.046 - y) / 0.004)) * np.exp(-((x / 0.05) ** 2))
    smile_w = _gauss(ax, y, 0.025, -0.045, 0.010, 0.010)
    eyes_w = _gauss(ax, y, 0.032, 0.031, 0.012, 0.004)
    lips_w = _gauss(x, y, 0.0, -0.046, 0.02, 0.01)
    expr = [
        np.stack([0 * x, -0.012 * lower, -0.003 * lower], -1),  # jaw open
        np.stack([0.004 * sx * smile_w, 0.004 * smile_w, -0.002 * smile_w], -1),  # smile
        np.stack([0 * x, 0.005 * _gauss(ax, y, 0.034, 0.048, 0.02, 0.01), 0 * x], -1),  # brow raise
        np.stack([0 * x, -0.003 * eyes_w, 0 * x], -1),  # eye close
        np.stack([-0.3 * x * lips_w, 0 * x, 0.004 * lips_w], -1),  # pucker
        np.stack([0.004 * smile_w * (x > 0), 0.004 * smile_w * (x > 0), 0 * x], -1),  # one-sided smile
    ]
    expr_basis = np.stack(expr)
    expr_std = np.sqrt((expr_basis ** 2).sum(-1).mean(-1))

    # -- albedo basis ----------------------------------------------------------------------------------
    one = np.ones_like(x)
    alb = [
        0.10 * albedo_mean,  # brightness
        np.stack([0.05 * one, -0.02 * one, -0.02 * one], -1),  # redness
        (labels == 4)[:, None] * np.array([0.12, 0.03, 0.03])[None],  # lip colour
        (labels == 3)[:, None] * np.array([-0.12, -0.09, -0.07])[None],  # brow darkness
        _gauss(ax, y, 0.040, -0.012, 0.015, 0.015)[:, None] * np.array([0.10, -0.02, -0.02])[None],  # cheek blush
        _gauss(x, y, 0.0, 0.060, 0.030, 0.012)[:, None] * np.array([0.06, 0.06, 0.02])[None],  # forehead shine
    ]
    albedo_basis = np.stack(alb)
    alb_std = np.sqrt((albedo_basis ** 2).sum(-1).mean(-1))

    def f32(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float32)

    return MorphableModel(
        name="toy",
        version=f"1-seed{seed}",
        mean=f32(mean),
        shape_basis=f32(shape_basis),
        expr_basis=f32(expr_basis),
        albedo_mean=f32(albedo_mean),
        albedo_basis=f32(albedo_basis),
        faces=torch.as_tensor(faces),
        uv=f32(uv),
        uv_faces=torch.as_tensor(faces.copy()),
        sym_vertex=torch.as_tensor(sym, dtype=torch.int64),
        lmk_faces=torch.as_tensor(lmk_faces),
        lmk_bary=f32(lmk_bary),
        contour_verts=torch.as_tensor(contour),
        region_labels=torch.as_tensor(labels),
        face_weight=f32(face_weight),
        shape_var=f32(std ** 2 / (std ** 2).sum()),
        expr_var=f32(expr_std ** 2 / (expr_std ** 2).sum()),
        albedo_var=f32(alb_std ** 2 / (alb_std ** 2).sum()),
        uv_symmetric=True,
        meta={"toy": True, "seed": seed, "grid": list(TOY_GRID)},
    )
