"""Landmark side of the model builder: learned iBUG-68 embedding, dynamic jaw contour, regions, and the
held-out 68-point evaluation (:func:`evaluate_landmark_fit`, recon3d's own landmark fitter)."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch
from matplotlib.path import Path as MplPath

from ...conventions import IBUG68_MIRROR
from ...fitting.landmarks import fit_landmarks
from ...fitting.params import DEFAULT_CONFIG, default_intrinsics
from ...ops.metrics import nme
from ..model import MorphableModel

log = logging.getLogger(__name__)

__all__ = ["learn_embedding", "contour_candidates", "region_labels", "evaluate_landmark_fit"]


def _bary_cost(rr, re1, re2, e11, e12, e22, b, g):
    return rr - 2 * b * re1 - 2 * g * re2 + b * b * e11 + 2 * b * g * e12 + g * g * e22


def _best_in_triangle(P: np.ndarray, tri: np.ndarray, G: np.ndarray) -> tuple[float, np.ndarray]:
    """Barycentrics in triangle ``tri`` minimising ``sum_i |bary . P[i, tri] - G[i]|^2``; returns (cost, bary)."""
    a, b, c = P[:, tri[0]], P[:, tri[1]], P[:, tri[2]]
    r, e1, e2 = G - a, b - a, c - a
    rr, re1, re2 = (r * r).sum(), (r * e1).sum(), (r * e2).sum()
    e11, e12, e22 = (e1 * e1).sum(), (e1 * e2).sum(), (e2 * e2).sum()
    cands = []
    M = np.array([[e11, e12], [e12, e22]])
    if abs(np.linalg.det(M)) > 1e-18:
        be, ga = np.linalg.solve(M, [re1, re2])
        if be >= 0 and ga >= 0 and be + ga <= 1:
            cands.append((be, ga))
    # Edges (clamped 1-D solutions) and corners.
    if e11 > 0:
        cands.append((float(np.clip(re1 / e11, 0, 1)), 0.0))
    if e22 > 0:
        cands.append((0.0, float(np.clip(re2 / e22, 0, 1))))
    d11 = e11 - 2 * e12 + e22  # edge b->c: be = 1 - s, ga = s
    if d11 > 0:
        s = float(np.clip((re2 - re1 - e12 + e11) / d11, 0, 1))
        cands.append((1 - s, s))
    cands += [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]
    costs = [_bary_cost(rr, re1, re2, e11, e12, e22, be, ga) for be, ga in cands]
    k = int(np.argmin(costs))
    be, ga = cands[k]
    return float(costs[k]), np.array([1 - be - ga, be, ga])


def learn_embedding(
    P: np.ndarray, G: np.ndarray, faces: np.ndarray, sym: np.ndarray, mirror_face: np.ndarray, frontal: np.ndarray,
    widths: np.ndarray, n_cand: int = 24,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learn the iBUG-68 embedding (triangle + barycentrics) from per-image 2D vertex positions.

    Args:
        P: (N,V,2) per-image vertex positions in pixels (already mirror-augmented by the caller).
        G: (N,68,2) manual landmarks, 0-based pixels (mirror-augmented alike).
        faces: (F,3); sym: (V,) vertex mirror map; mirror_face: (F,) face mirror map.
        frontal: (N,) bool, images used for the jaw points 0..16 (the others use all images); or (N, 17),
            one selection per jaw point (point ``k``'s column is used for it and for its mirror).
        widths: (N,) normalisation length per image (sqrt(w*h) of the landmark box).
    Returns:
        ``(lmk_faces (68,), lmk_bary (68,3), rms (68,))``; rms is the normalised residual per landmark.
        The embedding is exactly left-right symmetric: landmark ``IBUG68_MIRROR[k]`` uses the mirror
        triangle of landmark ``k``; midline landmarks lie on midline edges.
    """
    Pn = P / widths[:, None, None]
    Gn = G / widths[:, None, None]
    V = P.shape[1]
    vf = [[] for _ in range(V)]
    for f, tri in enumerate(faces):
        for v in tri:
            vf[v].append(f)
    midline = sym == np.arange(V)
    lmk_faces = np.zeros(68, np.int64)
    lmk_bary = np.zeros((68, 3))
    rms = np.zeros(68)
    done = set()
    for k in range(68):
        if k in done:
            continue
        m = IBUG68_MIRROR[k]
        sel = (frontal if frontal.ndim == 1 else frontal[:, k]) if k < 17 else np.ones(len(P), bool)
        Pk, Gk = Pn[sel], Gn[sel, k]
        # Per-vertex mean squared distance, to pick candidate triangles.
        cost_v = (Pk**2).sum((0, 2)) - 2 * np.einsum("nvc,nc->v", Pk, Gk) + (Gk**2).sum()
        if m == k:
            # Midline: search midline edges only.
            best = (np.inf, None, None)
            for v in np.argsort(np.where(midline, cost_v, np.inf))[:n_cand]:
                for f in vf[v]:
                    tri = faces[f]
                    on = [j for j in range(3) if midline[tri[j]]]
                    if len(on) < 2:
                        continue
                    i0, i1 = on[0], on[1]
                    a, b = Pk[:, tri[i0]], Pk[:, tri[i1]]
                    e, r = b - a, Gk - a
                    t = float(np.clip((r * e).sum() / max((e * e).sum(), 1e-18), 0, 1))
                    c = float(((r - t * e) ** 2).sum())
                    if c < best[0]:
                        bary = np.zeros(3)
                        bary[i0], bary[i1] = 1 - t, t
                        best = (c, f, bary)
            c, f, bary = best
        else:
            best = (np.inf, None, None)
            cand = set()
            for v in np.argsort(cost_v)[:n_cand]:
                cand.update(vf[v])
            for f in cand:
                c, bary = _best_in_triangle(Pk, faces[f], Gk)
                if c < best[0]:
                    best = (c, f, bary)
            c, f, bary = best
        lmk_faces[k], lmk_bary[k] = f, bary
        rms[k] = np.sqrt(max(c, 0.0) / sel.sum())  # the expanded cost can round below 0
        done.add(k)
        if m != k:
            fm = int(mirror_face[f])
            mapped = sym[faces[f]]
            order = [int(np.nonzero(faces[fm] == vv)[0][0]) for vv in mapped]
            bm = np.zeros(3)
            bm[order] = bary
            lmk_faces[m], lmk_bary[m] = fm, bm
            rms[m] = rms[k]
            done.add(m)
    return lmk_faces, lmk_bary.astype(np.float32), rms


def contour_candidates(mean: np.ndarray, lmk3d: np.ndarray, boundary: np.ndarray, K: int = 16, band: float = 0.004) -> np.ndarray:
    """Candidate vertices ``(17,K)`` (``-1`` padded) for each jaw landmark's dynamic contour.

    For jaw landmark ``k`` (not the chin), the candidates are the vertices in a horizontal band
    (``|y - y_k| < band`` m) on the landmark's side of the face, from its static position outwards
    (increasing ``|x|``) to the mesh border, one per x-bin, ordered inside -> out. For the chin (8), a
    vertical arc on the midline below the landmark, ordered front -> down. A fitter projects the
    candidates and takes the one on the silhouette (the outermost in the image for the side facing away).
    """
    out = -np.ones((17, K), np.int64)
    x, y, _z = mean[:, 0], mean[:, 1], mean[:, 2]
    for k in range(17):
        lx, ly, lz = lmk3d[k]
        if k == 8:
            sel = np.nonzero((np.abs(x) < 1e-6) & (y <= ly + band))[0]
            order = sel[np.argsort(-y[sel])]  # from the landmark downwards (under the chin)
        else:
            side = np.sign(lx)
            sel = np.nonzero((np.abs(y - ly) < band) & (side * x >= side * lx - band))[0]
            order = sel[np.argsort(side * x[sel])]
        if len(order) == 0:
            continue
        # Thin to at most K, evenly spaced, always keeping the first and last.
        idx = np.unique(np.round(np.linspace(0, len(order) - 1, min(K, len(order)))).astype(int))
        out[k, : len(idx)] = order[idx]
    return out


def _seg_dist(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance ``(P,)`` from 2D points to a closed polygon's edges."""
    d = np.full(len(p), np.inf)
    for a, b in zip(poly, np.roll(poly, -1, 0), strict=False):
        e = b - a
        t = np.clip(((p - a) @ e) / max(e @ e, 1e-18), 0, 1)
        d = np.minimum(d, np.linalg.norm(p - (a + t[:, None] * e), axis=1))
    return d


def region_labels(mean: np.ndarray, normals: np.ndarray, lmk3d: np.ndarray, border: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex region labels (``REGION_NAMES`` ids) and photometric weights from the 68-landmark embedding.

    Regions are 2D polygons of the embedded landmarks on the frontal mean (front-facing vertices only),
    dilated a little: eyes 36-41/42-47 (+3 mm), brows 17-21/22-26 (a 9 mm high band), lips 48-59
    (+1 mm), nose 27,31-35 with the nose wings (+5 mm). ``border`` vertices (a band along the mesh
    border) are "other" with weight 0. Weights: skin 1, nose 1, lips 0.6, brows 0.4, eyes 0.2.
    """
    xy = mean[:, :2]
    front = normals[:, 2] > 0.2
    labels = np.ones(len(mean), np.int8)
    L = lmk3d[:, :2]

    def inside(poly, grow):
        return front & (MplPath(poly).contains_points(xy) | (_seg_dist(xy, poly) < grow))

    nose = np.concatenate([L[[27]], L[[31, 32, 33, 34, 35]]], 0)
    labels[inside(nose, 0.005)] = 5
    for sl in (slice(17, 22), slice(22, 27)):
        line = L[sl]
        poly = np.concatenate([line + [0, 0.0045], line[::-1] - [0, 0.0045]], 0)
        labels[inside(poly, 0.002)] = 3
    labels[inside(L[48:60], 0.001)] = 4
    for sl in (slice(36, 42), slice(42, 48)):
        labels[inside(L[sl], 0.003)] = 2
    labels[border] = 0
    w = np.array([0.0, 1.0, 0.2, 0.4, 0.6, 1.0], np.float32)[labels]
    return labels, w


def _intrinsics(lmk_px: torch.Tensor, image_sizes: np.ndarray | None) -> torch.Tensor:
    """``K (B, 3, 3)``: :func:`~recon3d.fitting.default_intrinsics` of each photo, or, without image
    sizes, of a virtual square image twice the landmark box, centred on it."""
    B = lmk_px.shape[0]
    if image_sizes is not None:
        return torch.cat([default_intrinsics((int(h), int(w)), dtype=lmk_px.dtype) for h, w in image_sizes])
    lo, hi = lmk_px.amin(1), lmk_px.amax(1)
    side = 2.0 * float((hi - lo).max())
    K = default_intrinsics((int(side), int(side)), B, dtype=lmk_px.dtype).clone()
    K[:, :2, 2] = 0.5 * (lo + hi)
    return K


def evaluate_landmark_fit(model: MorphableModel, lmk_px: np.ndarray, *, n_shape: int = 40, n_expr: int = 10,
                          contour: bool = False, image_sizes: np.ndarray | None = None) -> dict:
    """Fit pose + shape + expression to 68 landmarks ``(B, 68, 2)`` and report the NME.

    The fit is recon3d's landmark stage, :func:`recon3d.fitting.fit_landmarks` (perspective camera
    of the default field of view, robust Levenberg-Marquardt, N(0, 1) priors) with the first
    ``n_shape`` / ``n_expr`` components, ``dynamic_contour=contour``, and a second, pose-only fit
    (no shape, no expression). ``image_sizes (B, 2)`` (H, W) give each photo's camera; without them a
    virtual image around the landmarks is used. NME: :func:`recon3d.ops.metrics.nme`, the mean point
    error divided by sqrt(w*h) of the ground-truth landmark box.

    Returns:
        ``{"nme_mean", "nme_median", "nme_mean_pose_only", "per_image"}``.
    """
    gt = torch.from_numpy(np.asarray(lmk_px, np.float64))
    K = _intrinsics(gt, image_sizes)
    out = {}
    for key, S, E in (("full", n_shape, n_expr), ("pose", 0, 0)):
        cfg = replace(DEFAULT_CONFIG, n_shape=S, n_expr=E, dynamic_contour=contour)
        out[key] = nme(fit_landmarks(gt, model=model, K=K, config=cfg).lmk_px, gt)
    e = out["full"]
    return {"nme_mean": float(e.mean()), "nme_median": float(e.median()), "nme_mean_pose_only": float(out["pose"].mean()),
            "per_image": e.tolist()}
