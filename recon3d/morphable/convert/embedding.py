"""Landmark-embedding heuristics shared by the converters: the 68 iBUG points on a foreign mesh
(exact where the mapping gives a vertex, filled in from mirrors, contours and interpolation rules
where it does not), the candidate vertices of the dynamic jaw contour, and the facial regions.

All numpy, float64, in the model frame (``docs/CONVENTIONS.md``); documented in ``docs/MODELS_USER.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...conventions import IBUG68_JAW, IBUG68_MIRROR
from ...errors import AssetError

__all__ = ["embed_landmarks", "contour_bands", "region_labels", "REGION_WEIGHT"]


def _front_project(verts: np.ndarray, faces: np.ndarray, xy: np.ndarray) -> tuple[int, np.ndarray] | None:
    """The front-most triangle under the point ``xy`` seen along -Z, and its barycentrics."""
    a, b, c = verts[faces[:, 0], :2], verts[faces[:, 1], :2], verts[faces[:, 2], :2]
    v0, v1, v2 = b - a, c - a, xy[None] - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-18
    den = np.where(ok, den, 1.0)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    w0 = 1.0 - w1 - w2
    eps = -1e-9
    inside = ok & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        return None
    z = (w0[idx] * verts[faces[idx, 0], 2] + w1[idx] * verts[faces[idx, 1], 2] + w2[idx] * verts[faces[idx, 2], 2])
    f = int(idx[np.argmax(z)])
    bary = np.clip(np.array([w0[f], w1[f], w2[f]]), 0.0, None)
    return f, bary / bary.sum()


def _closest_on_mesh(verts: np.ndarray, faces: np.ndarray, p: np.ndarray) -> tuple[int, np.ndarray]:
    """Closest surface point to ``p``: (triangle, barycentrics), searched among nearby triangles."""
    cent = verts[faces].mean(1)
    k = min(64, len(faces))
    cand = np.argpartition(((cent - p) ** 2).sum(1), k - 1)[:k]
    best = (np.inf, 0, np.array([1.0, 0.0, 0.0]))
    for f in cand:
        a, b, c = verts[faces[f]]
        bary = _closest_bary(a, b, c, p)
        q = bary[0] * a + bary[1] * b + bary[2] * c
        d = float(((q - p) ** 2).sum())
        if d < best[0]:
            best = (d, int(f), bary)
    return best[1], best[2]


def _closest_bary(a: np.ndarray, b: np.ndarray, c: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Barycentrics of the point of triangle abc closest to p (plane projection, else nearest edge)."""
    n = np.cross(b - a, c - a)
    nn = float(n @ n)
    if nn > 1e-30:
        q = p - (n @ (p - a)) / nn * n
        w1 = float(np.cross(q - a, c - a) @ n) / nn  # weight of b
        w2 = float(np.cross(b - a, q - a) @ n) / nn  # weight of c
        w0 = 1.0 - w1 - w2
        if min(w0, w1, w2) >= 0:
            return np.array([w0, w1, w2])
    best, out = np.inf, np.array([1.0, 0.0, 0.0])
    for i, j in ((0, 1), (1, 2), (2, 0)):
        P, Q = (a, b, c)[i], (a, b, c)[j]
        e = Q - P
        t = float(np.clip((p - P) @ e / max(float(e @ e), 1e-30), 0.0, 1.0))
        d = float(((P + t * e - p) ** 2).sum())
        if d < best:
            best = d
            out = np.zeros(3)
            out[i], out[j] = 1.0 - t, t
    return out


def _vertex_embedding(faces: np.ndarray, vid: int) -> tuple[int, np.ndarray]:
    rows, cols = np.nonzero(faces == vid)
    if rows.size == 0:
        raise ValueError(f"vertex {vid} is in no triangle")
    bary = np.zeros(3)
    bary[cols[0]] = 1.0
    return int(rows[0]), bary


def _point_in_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, ``xy (N,2)``, ``poly (P,2)`` -> ``(N,)`` bool."""
    x, y = xy[:, 0:1], xy[:, 1:2]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    cross = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-30, y1 - y0) + x0)
    return (cross.sum(1) % 2) == 1


def _dist_to_polyline(xy: np.ndarray, line: np.ndarray) -> np.ndarray:
    d = np.full(len(xy), np.inf)
    for P, Q in zip(line[:-1], line[1:], strict=True):
        e = Q - P
        t = np.clip(((xy - P) @ e) / max(float(e @ e), 1e-30), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(P + t[:, None] * e - xy, axis=1))
    return d


# Rules for landmarks a mapping leaves out (0-based iBUG). Each returns a 2D (x, y) point of the
# frontal projection from landmarks already placed; the point is then put on the front-most surface.
# "l(a, b, t)" is a + t (b - a).
def _l(P: dict, a: int, b: int, t: float) -> np.ndarray:
    return P[a] + t * (P[b] - P[a])


def _xy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([x[0], y[1], 0.0])


def _eye_w(P: dict) -> float:
    return float(np.linalg.norm(P[39] - P[36]))


_RULES: list[tuple[int, tuple[int, ...], object]] = [
    # brows: the ends above the eye corners when the mapping has no brow at all (BFM 2017), then the
    # middle (slightly arched) and midpoints of neighbours
    (17, (36, 39), lambda P: _xy(_l(P, 39, 36, 1.3), P[36] + [0, 0.6 * _eye_w(P), 0])),
    (21, (36, 39), lambda P: _xy(_l(P, 36, 39, 1.05), P[39] + [0, 0.7 * _eye_w(P), 0])),
    (19, (17, 21), lambda P: _l(P, 17, 21, 0.5) + [0, 0.1 * float(np.linalg.norm(P[21] - P[17])), 0]),
    (18, (17, 19), lambda P: _l(P, 17, 19, 0.5)),
    (20, (19, 21), lambda P: _l(P, 19, 21, 0.5)),
    # nose-lip junction between the nose tip and the upper lip
    (33, (30, 51), lambda P: _l(P, 30, 51, 0.5)),
    # nose bridge from the inner eye corners down to the tip
    (27, (39, 42), lambda P: _l(P, 39, 42, 0.5)),
    (28, (27, 30), lambda P: _l(P, 27, 30, 1 / 3)),
    (29, (27, 30), lambda P: _l(P, 27, 30, 2 / 3)),
    # nostrils from the nose-lip junction and the mouth corner
    (31, (33, 48, 30), lambda P: _xy(_l(P, 33, 48, 0.65), _l(P, 33, 30, 0.12))),
    (32, (33, 31), lambda P: _l(P, 33, 31, 0.5)),
    # eyelids: thirds of the corner-to-corner segment, raised/lowered by 12% of the eye width
    (37, (36, 39), lambda P: _l(P, 36, 39, 1 / 3) + [0, 0.12 * np.linalg.norm(P[39] - P[36]), 0]),
    (38, (36, 39), lambda P: _l(P, 36, 39, 2 / 3) + [0, 0.12 * np.linalg.norm(P[39] - P[36]), 0]),
    (40, (36, 39), lambda P: _l(P, 36, 39, 2 / 3) - [0, 0.10 * np.linalg.norm(P[39] - P[36]), 0]),
    (41, (36, 39), lambda P: _l(P, 36, 39, 1 / 3) - [0, 0.10 * np.linalg.norm(P[39] - P[36]), 0]),
    # outer lips from the corners and the mid points
    (49, (48, 51), lambda P: _xy(_l(P, 51, 48, 0.65), _l(P, 51, 48, 0.3))),
    (50, (48, 51), lambda P: _xy(_l(P, 51, 48, 0.3), P[51])),
    (58, (48, 57), lambda P: _xy(_l(P, 57, 48, 0.35), _l(P, 57, 48, 0.1))),
    (59, (48, 57), lambda P: _xy(_l(P, 57, 48, 0.7), _l(P, 57, 48, 0.45))),
    # inner lips
    (60, (48, 62, 66), lambda P: P[48] + 0.15 * (0.5 * (P[62] + P[66]) - P[48])),
    (61, (62, 60), lambda P: _xy(_l(P, 62, 60, 0.5), _l(P, 62, 60, 0.2))),
    (67, (66, 60), lambda P: _xy(_l(P, 66, 60, 0.5), _l(P, 66, 60, 0.2))),
    (62, (61, 63), lambda P: _l(P, 61, 63, 0.5)),
    (66, (65, 67), lambda P: _l(P, 65, 67, 0.5)),
]


def _jaw_from_contours(
    verts: np.ndarray, contours: tuple[Sequence[int], Sequence[int]], P: dict, src: dict
) -> None:
    """Place the jaw landmarks 0..16 (those still missing) along the model's contour lines."""
    right, left = (np.asarray(c, dtype=np.int64) for c in contours)
    if 8 not in P:  # chin: lowest midline point between the contours' lower ends
        ends = [verts[c[np.argmin(verts[c, 1])]] for c in (right, left)]
        target = 0.5 * (ends[0] + ends[1])
        mid = np.flatnonzero(np.abs(verts[:, 0]) < 0.01 * np.ptp(verts[:, 0]) + 1e-9)
        pool = mid if mid.size else np.arange(len(verts))
        P[8] = verts[pool[np.argmin(((verts[pool] - target) ** 2).sum(1))]]
        src[8] = "contour"
    for side, ids, lmks in ((-1, right, range(0, 8)), (1, left, range(16, 8, -1))):
        line = ids[np.argsort(-verts[ids, 1])]  # top to bottom
        if len(line) == 8:
            for k, j in enumerate(lmks):
                if j not in P:
                    P[j], src[j] = verts[line[k]], "contour"
            continue
        pts = verts[line]
        eye = 36 if side < 0 else 45
        if eye in P:  # start at the height of the outer eye corner
            pts = pts[pts[:, 1] <= P[eye][1]] if (pts[:, 1] <= P[eye][1]).sum() >= 2 else pts
        pts = np.concatenate([pts, P[8][None]], 0)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        for k, j in enumerate(lmks):
            if j in P:
                continue
            s = cum[-1] * k / 8.0
            i = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1))
            t = (s - cum[i]) / max(seg[i], 1e-12)
            P[j], src[j] = pts[i] + t * (pts[i + 1] - pts[i]), "contour"


def embed_landmarks(
    verts: np.ndarray,
    faces: np.ndarray,
    mapping: dict[int, int],
    contours: tuple[Sequence[int], Sequence[int]] | None,
    where: str,
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """The 68-landmark embedding: ``(lmk_faces (68,), lmk_bary (68,3), sources, positions (68,3))``.

    Mapped vertices are exact (barycentric one-hot). Missing points are, in order: mirrored from their
    left/right counterpart, placed along the contours (jaw), or interpolated from neighbours (rules
    above); all are recorded in ``sources``.
    """
    P: dict[int, np.ndarray] = {}
    src: dict[int, str] = {}
    V = len(verts)
    for i, v in mapping.items():
        if not 0 <= v < V:
            raise AssetError(f"{where}: landmark {i + 1} maps to vertex {v}, outside [0, {V})")
        P[i], src[i] = verts[v], "exact"
    M = np.array([-1.0, 1.0, 1.0])
    for _ in range(6):
        for i in range(68):  # mirror of a known landmark
            j = IBUG68_MIRROR[i]
            if i not in P and j in P and src[j] in ("exact", "contour", "interpolated"):
                P[i], src[i] = P[j] * M, "mirrored"
        if contours is not None and any(j not in P for j in IBUG68_JAW):
            if all(k in P for k in (36, 45)) or 8 in P:
                _jaw_from_contours(verts, contours, P, src)
        for i, needs, fn in _RULES:
            if i not in P and all(n in P for n in needs):
                P[i], src[i] = np.asarray(fn(P), dtype=np.float64), "interpolated"  # type: ignore[operator]
            mi = IBUG68_MIRROR[i]
            mneeds = [IBUG68_MIRROR[n] for n in needs]
            if mi not in P and all(n in P for n in mneeds):
                Q = {n: P[IBUG68_MIRROR[n]] * M for n in needs}
                P[mi], src[mi] = np.asarray(fn(Q), dtype=np.float64) * M, "interpolated"  # type: ignore[operator]
        if len(P) == 68:
            break
    missing = [i + 1 for i in range(68) if i not in P]
    if missing:
        hint = " (pass --contours for the jaw 1-17)" if any(m <= 17 for m in missing) else ""
        raise AssetError(
            f"{where}: cannot place iBUG landmarks {missing} from the mapping{hint}; give a mapping that covers "
            "more points (see docs/MODELS_USER.md)."
        )
    lf = np.zeros(68, np.int64)
    lb = np.zeros((68, 3))
    pos = np.zeros((68, 3))
    for i in range(68):
        if src[i] == "exact":
            lf[i], lb[i] = _vertex_embedding(faces, mapping[i])
        else:
            hit = None
            if src[i] == "interpolated" or (src[i] == "mirrored" and i not in IBUG68_JAW):
                hit = _front_project(verts, faces, P[i][:2])
            lf[i], lb[i] = hit if hit is not None else _closest_on_mesh(verts, faces, P[i])
        pos[i] = (verts[faces[lf[i]]] * lb[i][:, None]).sum(0)
    return lf, lb, [src[i] for i in range(68)], pos


def contour_bands(verts: np.ndarray, normals: np.ndarray, lmk: np.ndarray, k_max: int = 24) -> np.ndarray:
    """Per jaw landmark, candidate vertices for the dynamic contour, ``(17, K)`` int64 padded with -1.

    Row ``j`` is a thin horizontal band (half-height 2% of the jaw width) at the static landmark's
    height on its side of the face, from 70% of the way towards the face's midline out to the static
    landmark itself (never further out), ordered inside -> out; the vertex nearest the static landmark
    is always the last one. A fitter that takes the candidate projecting furthest outwards therefore
    gets the static landmark for a frontal face and the cheek's silhouette when that side turns away.
    Row 8 (the chin) holds the chin vertex only.
    """
    width = float(np.ptp(lmk[:17, 0])) or 1.0
    mid_x = 0.5 * float(lmk[30, 0] + lmk[51, 0])
    rows = []
    for j in range(17):
        p = lmk[j]
        near = int(np.argmin(((verts - p) ** 2).sum(1)))
        s = np.sign(p[0] - mid_x)
        ax = s * (p[0] - mid_x)  # distance of the landmark from the midline
        if j == 8 or ax < 0.05 * width:
            rows.append([near])
            continue
        dx = s * (verts[:, 0] - mid_x)
        m = (np.abs(verts[:, 1] - p[1]) < 0.02 * width) & (dx <= ax) & (dx >= 0.3 * ax) & (normals[:, 2] > -0.3)
        idx = np.flatnonzero(m)
        idx = idx[idx != near]
        idx = idx[np.argsort(dx[idx])]
        if idx.size > k_max - 1:
            idx = idx[np.round(np.linspace(0, idx.size - 1, k_max - 1)).astype(int)]
        rows.append(idx.tolist() + [near])
    K = max(len(r) for r in rows)
    out = np.full((17, K), -1, np.int64)
    for j, r in enumerate(rows):
        out[j, : len(r)] = r
    return out


def region_labels(verts: np.ndarray, normals: np.ndarray, lmk: np.ndarray) -> np.ndarray:
    """Region labels (0 other, 1 skin, 2 eyes, 3 brows, 4 lips, 5 nose) from the landmark layout, in
    the frontal (x, y) projection; only front-facing vertices get a facial label."""
    xy = verts[:, :2]
    L = lmk[:, :2]
    eye_w = float(np.linalg.norm(L[39] - L[36]))
    front = normals[:, 2] > 0.0
    lab = np.zeros(len(verts), np.int8)
    # face: the jaw line closed over the forehead (raised brows)
    rise = 0.45 * float(0.5 * (L[19, 1] + L[24, 1]) - L[8, 1])
    face_poly = np.concatenate([L[0:17], L[[26]] + [0, rise], L[[17]] + [0, rise]], 0)
    lab[_point_in_polygon(xy, face_poly) & front] = 1
    nose_poly = np.concatenate([L[[27]], L[[31]] + [-0.1 * eye_w, 0], L[31:36], L[[35]] + [0.1 * eye_w, 0]], 0)
    nose = _point_in_polygon(xy, nose_poly) | (_dist_to_polyline(xy, L[27:31]) < 0.25 * eye_w)
    lab[nose & front & (lab == 1)] = 5
    brows = (_dist_to_polyline(xy, L[17:22]) < 0.22 * eye_w) | (_dist_to_polyline(xy, L[22:27]) < 0.22 * eye_w)
    lab[brows & front & (lab == 1)] = 3
    lips = _point_in_polygon(xy, L[48:60])
    lab[lips & front & (lab >= 1)] = 4
    eyes = np.zeros(len(verts), bool)
    for a, b in ((36, 42), (42, 48)):
        c = L[a:b].mean(0)
        poly = c + 1.25 * (L[a:b] - c)  # a little larger than the lid landmarks
        eyes |= _point_in_polygon(xy, poly)
    lab[eyes & front & (lab >= 1)] = 2
    return lab


#: photometric-loss weight per region (other, skin, eyes, brows, lips, nose); the default model's values
REGION_WEIGHT = np.array([0.0, 1.0, 0.2, 0.4, 0.6, 1.0], np.float32)
