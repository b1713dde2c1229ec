"""Build a :class:`~recon3d.morphable.MorphableModel` from per-photo MediaPipe face meshes.

This is how recon3d's default model ``assets/recon3d_face_v1.npz`` is made (see ``docs/MODEL.md``);
``python -m pipelines.build_model`` runs it on any folder of photos. Steps:

1. MediaPipe Face Mesh points (468 per photo, run in a separate interpreter) become 3D points in
   model axes (``frontal_rotation``: image x right -> +X, image y down -> +Y up, depth -> +Z out).
2. Generalised Procrustes (similarity) on MediaPipe's own rigid "procrustes landmark basis"; the
   mean is rotated onto MediaPipe's canonical mesh axes; the data are mirror-augmented with the
   vertex symmetry map, which makes the mean exactly symmetric; metres from a mean outer-eye-corner
   distance (ex-ex) of :attr:`BuildConfig.exex_m`.
3. Expression / identity split without identity labels: the identity part of each shape is what a
   linear regression from the *stable* region (forehead, nose, upper cheeks, away from eyes and brows)
   predicts; the residual's PCA is the expression basis; the identity basis is the PCA of the data
   with the expression subspace projected out (so the two bases are orthogonal).
4. Two Loop subdivisions (a linear operator applied to the mean and to every basis vector).
5. Albedo: per-vertex colours sampled at the projected vertices of front-facing vertices, 27-coefficient
   SH lighting removed per photo (alternating with a median albedo), EM-PCA with missing data.
6. Spherical UV layout, exactly mirror symmetric; learned iBUG-68 embedding; dynamic jaw contour
   candidates; region labels and photometric weights.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..conventions import (
    IBUG68_MIRROR,
    frontal_rotation,
    mirror_model_x,
    mirror_points_px,
    pts_one_based_to_zero_based,
)
from ..errors import AssetError, ShapeError
from . import _build_albedo as alb
from . import _build_geometry as geo
from . import _build_landmarks as lmk
from .model import MorphableModel

log = logging.getLogger(__name__)

__all__ = [
    "BuildConfig", "BuildData", "read_pts", "load_mediapipe_cache", "mediapipe_to_model_axes", "build_model",
    "evaluate_landmark_fit",
]



def _mirror_x(points: np.ndarray) -> np.ndarray:
    """numpy wrapper of :func:`recon3d.conventions.mirror_model_x` (negate model X)."""
    return mirror_model_x(torch.from_numpy(np.asarray(points, np.float64))).numpy()


def _mirror_px(xy: np.ndarray, width: np.ndarray) -> np.ndarray:
    """numpy wrapper of :func:`recon3d.conventions.mirror_points_px` for per-image widths ``(N,)``."""
    t = torch.from_numpy(np.asarray(xy, np.float64))
    return np.stack([mirror_points_px(t[i], int(w)).numpy() for i, w in enumerate(width)])


@dataclass(frozen=True)
class BuildConfig:
    """Settings of :func:`build_model` (all recorded in the model's ``meta``)."""

    n_shape: int = 60
    n_expr: int = 20
    n_albedo: int = 40
    subdivisions: int = 2
    exex_m: float = 0.090  # mean outer eye-corner distance, metres (adult ex-ex, Farkas 1994: ~0.087 F / 0.091 M)
    n_holdout: int = 100
    seed: int = 0
    frontal_yaw_deg: float = 20.0
    stable_exclude_cm: float = 1.2  # canonical-mesh cm around eyes/brows left out of the stable region
    albedo_image_limit: int = 0  # 0: all training photos


@dataclass(frozen=True)
class BuildData:
    """Inputs of :func:`build_model` (numpy). N photos, 468 MediaPipe points."""

    paths: list  # N image paths
    points: np.ndarray  # (N,468,3) MediaPipe normalised x, y, z
    sizes: np.ndarray  # (N,2) H, W
    lmk68: np.ndarray | None  # (N,68,2) 0-based manual landmarks, or None
    groups: dict  # MediaPipe landmark groups name -> vertex ids


def read_pts(path: str | Path) -> np.ndarray:
    """Read a 300-W ``.pts`` file into ``(68,2)`` 0-based pixel coordinates.

    Raises:
        AssetError: the file is not a 68-point ``.pts`` file.
    """
    txt = Path(path).read_text()
    m = re.search(r"\{(.*)\}", txt, re.S)
    if not m:
        raise AssetError(f"read_pts(): {path} is not a .pts file (no '{{ ... }}' block)")
    xy = np.array([[float(t) for t in ln.split()] for ln in m.group(1).strip().splitlines()], np.float64)
    if xy.shape != (68, 2):
        raise AssetError(f"read_pts(): {path} must hold 68 points, got {xy.shape}")
    return pts_one_based_to_zero_based(torch.from_numpy(xy)).numpy()


def load_mediapipe_cache(path: str | Path, *, require_pts: bool = False) -> BuildData:
    """Read the ``.npz`` written by ``_build_mediapipe.py``, keep photos with a face, attach ``.pts`` files."""
    z = np.load(path, allow_pickle=False)
    keep = z["found"].astype(bool)
    paths = [str(p) for p, k in zip(z["paths"], keep, strict=False) if k]
    pts = []
    for p in paths:
        q = Path(p).with_suffix(".pts")
        pts.append(read_pts(q) if q.is_file() else None)
    have = all(p is not None for p in pts)
    if require_pts and not have:
        raise AssetError(f"load_mediapipe_cache(): some photos lack a .pts landmark file next to them (e.g. {paths[pts.index(None)]})")
    groups = {k[len("group_"):]: z[k].astype(np.int64) for k in z.files if k.startswith("group_")}
    return BuildData(paths, z["points"][keep].astype(np.float64), z["sizes"][keep], np.stack(pts) if have else None, groups)


def mediapipe_to_model_axes(points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """MediaPipe normalised points ``(N,P,3)`` -> pixel-scaled points in model axes ``(N,P,3)``.

    MediaPipe's (x*W, y*H, z*W) is a camera-like frame (x right, y down, z away from the camera);
    ``frontal_rotation`` (its own inverse) turns it into model axes (+X right = subject's left, +Y up,
    +Z towards the camera).
    """
    H, W = sizes[:, 0].astype(np.float64), sizes[:, 1].astype(np.float64)
    cam = points * np.stack([W, H, W], 1)[:, None, :]
    R = frontal_rotation(torch.float64).numpy()
    return cam @ R.T


def _procrustes_weights(pbtxt: Path, n: int) -> np.ndarray:
    w = np.zeros(n)
    for m in re.finditer(r"landmark_id:\s*(\d+)\s+weight:\s*([0-9.eE+-]+)", pbtxt.read_text()):
        w[int(m.group(1))] = float(m.group(2))
    if not w.any():
        raise AssetError(f"{pbtxt}: no procrustes_landmark_basis entries")
    return w


def _subdivide(faces: np.ndarray, n_verts: int, times: int):
    import scipy.sparse as sp

    S = sp.identity(n_verts, format="csr")
    for _ in range(times):
        Si, faces = geo.loop_subdivision(faces, S.shape[0])
        S = Si @ S
    return S.tocsr(), faces


def _apply(S, X: np.ndarray) -> np.ndarray:
    """Apply the sparse (V',V) operator to per-vertex data (..., V, C)."""
    lead, (V, C) = X.shape[:-2], X.shape[-2:]
    flat = np.moveaxis(X.reshape(-1, V, C), 1, 0).reshape(V, -1)
    out = S @ flat
    return np.moveaxis(out.reshape(S.shape[0], -1, C), 0, 1).reshape(*lead, S.shape[0], C)


def _mirror(points: np.ndarray, sym: np.ndarray) -> np.ndarray:
    """Mirror model-frame shapes (..., V, 3) left <-> right and re-index so vertex i stays vertex i."""
    return _mirror_x(points)[..., sym, :]


def _pca(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Principal directions (k,D) and variances (k,) of centred rows ``D``."""
    U, s, Vt = np.linalg.svd(D, full_matrices=False)
    return Vt[:k], (s[:k] ** 2) / (len(D) - 1)


def _split_holdout(data: BuildData, cfg: BuildConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed)
    n = len(data.paths)
    hold = np.zeros(n, bool)
    if cfg.n_holdout:
        hold[rng.choice(n, size=min(cfg.n_holdout, n // 5), replace=False)] = True
    return hold


def build_model(
    data: BuildData,
    canonical_obj: str | Path,
    *,
    config: BuildConfig = BuildConfig(),
    name: str = "recon3d_face",
    version: str = "1",
    load_image: Callable[[str], np.ndarray] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[MorphableModel, dict]:
    """Build a morphable model from MediaPipe meshes of photos. Returns ``(model, report)``.

    Args:
        data: the MediaPipe cache with the photos' 68-point landmarks (required: they are what the
            iBUG-68 embedding is learned from; ``ShapeError`` otherwise).
        canonical_obj: MediaPipe's ``canonical_face_model.obj`` (triangulation and axes; read at build
            time only) with ``geometry_pipeline_metadata_landmarks.pbtxt`` next to it.
        config: sizes and constants.
        load_image: ``path -> (H,W,3) float [0,1]`` RGB; default PIL.
        progress: ``(stage, done, total)`` callback for a progress bar.
    """
    if data.lmk68 is None:
        raise ShapeError("build_model(): 68-point .pts landmarks are required to learn the landmark embedding")
    cfg = config
    rng = np.random.default_rng(cfg.seed)
    canon_v, faces0 = geo.read_obj(canonical_obj)
    n0 = len(canon_v)
    if data.points.shape[1] != n0:
        raise ShapeError(f"build_model(): MediaPipe meshes have {data.points.shape[1]} points, the canonical mesh {n0}")
    w_align = _procrustes_weights(Path(canonical_obj).with_name("geometry_pipeline_metadata_landmarks.pbtxt"), n0)
    sym0 = geo.symmetry_map(canon_v, _mirror_x)
    faces0, flipped = geo.orient_faces_outward(canon_v, faces0)
    report: dict = {"config": asdict(cfg), "canonical_faces_flipped": bool(flipped)}

    hold = _split_holdout(data, cfg)
    train = ~hold
    X_all = mediapipe_to_model_axes(data.points, data.sizes)

    # -- 2. alignment ----------------------------------------------------------------------------
    X_al, ref, rots = geo.generalized_procrustes(X_all[train], w_align)
    s, R, t = geo.similarity_procrustes(ref, canon_v)  # onto the canonical axes (and size, cm)
    X_al = s * X_al @ R.T + t
    rots = np.einsum("ij,njk->nik", R, rots)
    yaw = np.degrees(np.arctan2(rots[:, 0, 2], rots[:, 2, 2]))  # rotation about +Y of each photo into the frame
    X_aug = np.concatenate([X_al, _mirror(X_al, sym0)], 0)
    mean0 = X_aug.mean(0)
    mean0 = 0.5 * (mean0 + _mirror(mean0, sym0))
    # Re-align everything to the symmetric mean, then re-augment.
    for i in range(len(X_al)):
        si, Ri, ti = geo.similarity_procrustes(X_al[i], mean0, w_align)
        X_al[i] = si * X_al[i] @ Ri.T + ti
    X_aug = np.concatenate([X_al, _mirror(X_al, sym0)], 0)
    mean0 = X_aug.mean(0)
    mean0 = 0.5 * (mean0 + _mirror(mean0, sym0))
    to_m = cfg.exex_m / float(np.linalg.norm(mean0[263] - mean0[33]))
    centre = mean0.mean(0) * np.array([0.0, 1.0, 1.0])
    mean0 = (mean0 - centre) * to_m
    X_aug = (X_aug - centre) * to_m
    report["depth_ratio_vs_canonical"] = float(np.ptp(mean0[:, 2]) / np.ptp(mean0[:, 0]) / (np.ptp(canon_v[:, 2]) / np.ptp(canon_v[:, 0])))

    # -- 3. expression / identity split ------------------------------------------------------------
    D = (X_aug - mean0).reshape(len(X_aug), -1)
    total_var = float((D**2).sum() / (len(D) - 1))
    ey = np.concatenate([data.groups.get(g, np.zeros(0, np.int64)) for g in ("LEFT_EYE", "RIGHT_EYE", "LEFT_EYEBROW", "RIGHT_EYEBROW")])
    d_eye = np.linalg.norm(canon_v[:, None] - canon_v[ey][None], axis=-1).min(1) if len(ey) else np.full(n0, np.inf)
    stable = (canon_v[:, 1] > canon_v[2, 1]) & (d_eye > cfg.stable_exclude_cm)
    report["n_stable_vertices"] = int(stable.sum())
    Ds = (X_aug[:, stable] - mean0[stable]).reshape(len(X_aug), -1)
    Us, ss, Vts = np.linalg.svd(Ds, full_matrices=False)
    k_s = int(np.searchsorted(np.cumsum(ss**2) / (ss**2).sum(), 0.98) + 1)
    Z = Us[:, :k_s] * ss[:k_s]
    B = np.linalg.lstsq(Z, D, rcond=None)[0]
    Rres = D - Z @ B
    E_dir, E_var = _pca(Rres, cfg.n_expr)
    D_id = D - (D @ E_dir.T) @ E_dir
    I_dir, I_var = _pca(D_id, cfg.n_shape)
    # Variance of the data along each expression direction (not only of the residual).
    E_var = ((D @ E_dir.T) ** 2).sum(0) / (len(D) - 1)
    order = np.argsort(E_var)[::-1]
    E_dir, E_var = E_dir[order], E_var[order]
    report.update(stable_pcs=k_s, total_shape_var_m2=total_var)
    shape_var = I_var / total_var
    expr_var = E_var / total_var

    # -- 4. subdivision ----------------------------------------------------------------------------
    S, faces = _subdivide(faces0, n0, cfg.subdivisions)
    V = S.shape[0]
    mean = _apply(S, mean0)
    shape_basis = _apply(S, (I_dir * np.sqrt(I_var)[:, None]).reshape(-1, n0, 3))
    expr_basis = _apply(S, (E_dir * np.sqrt(E_var)[:, None]).reshape(-1, n0, 3))
    # Symmetry map of the subdivided mesh (subdivision commutes with mirroring).
    sym = _sym_from_operator(S, sym0)
    mean = 0.5 * (mean + _mirror(mean, sym))
    mirror_face = geo.mirror_face_map(faces, sym)
    report["faces_without_mirror"] = int((mirror_face < 0).sum())

    # -- 6a. UV --------------------------------------------------------------------------------------
    ctr = np.array([0.0, float(mean[:, 1].mean()), float(mean[:, 2].min()) - 0.02])
    uv = geo.spherical_uv(mean, ctr)
    report["uv_flipped_faces"] = int(geo.uv_flipped(uv, faces).sum())

    # -- 6b. landmark embedding ------------------------------------------------------------------------
    tr_idx = np.nonzero(train)[0]
    Rf = frontal_rotation(torch.float64).numpy()
    P2 = _apply(S, X_all[tr_idx] @ Rf.T)[..., :2]  # back to image pixels (x right, y down)
    G = data.lmk68[tr_idx]
    Wimg = data.sizes[tr_idx, 1].astype(np.float64)
    P2m = _mirror_px(P2[:, sym], Wimg)
    Gm = _mirror_px(G[:, list(IBUG68_MIRROR)], Wimg)
    Pa, Ga = np.concatenate([P2, P2m]), np.concatenate([G, Gm])
    box = Ga.max(1) - Ga.min(1)
    widths = np.sqrt(box[:, 0] * box[:, 1])
    frontal = np.abs(np.concatenate([yaw, -yaw])) < cfg.frontal_yaw_deg
    report["n_frontal_for_jaw"] = int(frontal.sum())
    lmk_faces, lmk_bary, lmk_rms = lmk.learn_embedding(Pa, Ga, faces, sym, mirror_face, frontal, widths)
    report["embedding_rms_nme"] = float(lmk_rms.mean())
    lmk3d = (mean[faces[lmk_faces]] * lmk_bary[:, :, None]).sum(1)
    normals = geo.vertex_normals(mean, faces)
    bnd = geo.boundary_vertices(faces, V)
    border = bnd.copy()
    nbr = _neighbours(faces, V)
    for _ in range(3):
        border = border | (nbr @ border.astype(float) > 0)
    contour = lmk.contour_candidates(mean, lmk3d, bnd)
    labels, face_w = lmk.region_labels(mean, normals, lmk3d, border)

    # -- 5. albedo ---------------------------------------------------------------------------------------
    alb_idx = tr_idx if not cfg.albedo_image_limit else np.sort(rng.choice(tr_idx, cfg.albedo_image_limit, replace=False))
    albedo_mean, albedo_basis, albedo_var, alb_rep = _build_albedo(data, alb_idx, X_all, S, faces, sym, load_image, progress, cfg)
    report.update(alb_rep)

    meta = {
        "source": "300-W photos (AFW, HELEN) -> MediaPipe Face Mesh 0.10.21 (468 points) -> recon3d.morphable.build",
        "n_train_photos": int(train.sum()),
        "n_holdout_photos": int(hold.sum()),
        "holdout_paths": [Path(p).name for p, h in zip(data.paths, hold, strict=False) if h],
        "exex_m": cfg.exex_m,
        "frame": "+X subject's left, +Y up, +Z out of the face; metres; origin at the mean's centroid",
        "subdivision": f"Loop x{cfg.subdivisions} of MediaPipe's canonical triangulation",
        "uv": "spherical projection of the symmetric mean, mirror symmetric about u=0.5",
        "contour_usage": "contour_verts[k] lists candidate vertices for jaw landmark k (-1 padded), inner -> outer; "
        "project them and use the outermost (silhouette) one instead of the static landmark for non-frontal poses",
        "config": asdict(cfg),
    }
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    i64 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    model = MorphableModel(
        name=name, version=version, mean=f32(mean), shape_basis=f32(shape_basis), expr_basis=f32(expr_basis),
        albedo_mean=f32(albedo_mean), albedo_basis=f32(albedo_basis), faces=i64(faces), uv=f32(uv), uv_faces=i64(faces),
        sym_vertex=i64(sym), lmk_faces=i64(lmk_faces), lmk_bary=f32(lmk_bary), contour_verts=i64(contour),
        region_labels=torch.from_numpy(labels.astype(np.int8)), face_weight=f32(face_w), shape_var=f32(shape_var),
        expr_var=f32(expr_var), albedo_var=f32(albedo_var), uv_symmetric=True, meta=meta,
    )
    report["holdout_mask"] = hold
    report["yaw_deg"] = yaw
    report["lmk_rms"] = lmk_rms
    return model, report


def _neighbours(faces: np.ndarray, V: int):
    import scipy.sparse as sp

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    A = sp.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V))
    return ((A + A.T) > 0).astype(float)


def _sym_from_operator(S, sym0: np.ndarray) -> np.ndarray:
    """Symmetry map of subdivided vertices: each new vertex's stencil, mirrored, is another vertex's stencil."""
    S = S.tocsr()
    key = {}
    for i in range(S.shape[0]):
        row = S.getrow(i)
        key[tuple(sorted(zip(row.indices.tolist(), np.round(row.data, 9).tolist(), strict=False)))] = i
    sym = np.empty(S.shape[0], np.int64)
    for i in range(S.shape[0]):
        row = S.getrow(i)
        k = tuple(sorted(zip(sym0[row.indices].tolist(), np.round(row.data, 9).tolist(), strict=False)))
        if k not in key:
            raise ShapeError("build_model(): the subdivided mesh is not mirror symmetric")
        sym[i] = key[k]
    return sym


def _default_load_image(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _build_albedo(data, idx, X_all, S, faces, sym, load_image, progress, cfg):
    load_image = load_image or _default_load_image
    V = S.shape[0]
    N = len(idx)
    colours = np.zeros((N, V, 3), np.float32)
    masks = np.zeros((N, V), bool)
    shs = np.zeros((N, V, 9), np.float32)
    Rf = frontal_rotation(torch.float64).numpy()
    for j, i in enumerate(idx):
        img = load_image(data.paths[i])
        H, W = img.shape[:2]
        verts = _apply(S, X_all[i])  # model axes, pixel units (view frame: +Z towards the camera)
        n = geo.vertex_normals(verts, faces)
        xy = (verts @ Rf.T)[:, :2]  # back to image pixels
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= W - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= H - 1)
        masks[j] = inside & (n[:, 2] > 0.3)
        colours[j] = alb.bilinear_sample(img, xy)
        shs[j] = alb.sh_basis_np(n)
        if progress:
            progress("albedo: sampling", j + 1, N)
    delit, m2, lights = alb.delight(colours, masks, shs)
    # Robust: drop samples far from the per-vertex median (hair, glasses, hands, specular highlights).
    med = np.nanmedian(np.where(m2[..., None], delit, np.nan), 0)
    mad = np.nanmedian(np.abs(np.where(m2[..., None], delit, np.nan) - med), 0)
    ok = m2 & (np.abs(delit - med).max(-1) < 3.5 * np.maximum(mad.max(-1), 0.02))
    # Mirror augmentation: the mirrored photo sees albedo[sym].
    data2 = np.concatenate([delit, delit[:, sym]], 0).reshape(2 * N, -1)
    mask2 = np.repeat(np.concatenate([ok, ok[:, sym]], 0), 3, axis=1)
    mean, comps, std, ratio = alb.em_pca(data2.astype(np.float64), mask2, cfg.n_albedo)
    mean = np.clip(mean.reshape(V, 3), 0, 1)
    basis = (comps * std[:, None]).reshape(-1, V, 3)
    rep = {
        "albedo_photos": int(N), "albedo_visible_fraction": float(ok.mean()),
        "albedo_mean_rgb": mean.mean(0).round(3).tolist(),
    }
    return mean, basis, ratio, rep


def evaluate_landmark_fit(model: MorphableModel, lmk_px: np.ndarray, *, n_shape: int = 40, n_expr: int = 10, contour: bool = False) -> dict:
    """Fit pose + shape + expression to 68 landmarks ``(B,68,2)`` (scaled orthographic camera) and report the NME.

    NME: mean point error over the 68 points divided by sqrt(w*h) of the ground-truth landmark box.
    Returns ``{"nme_mean", "nme_median", "nme_mean_pose_only", "per_image"}``. Slow-ish: about 2 minutes
    for 100 images on 2 CPU cores (two fits: full and pose-only).
    """
    gt = torch.from_numpy(np.asarray(lmk_px, np.float64)).float()
    pred = lmk.fit_landmarks_2d(model, gt, n_shape=n_shape, n_expr=n_expr, contour=contour)
    e = lmk.nme(pred, gt)
    pred0 = lmk.fit_landmarks_2d(model, gt, n_shape=0, n_expr=0, contour=contour)
    e0 = lmk.nme(pred0, gt)
    return {"nme_mean": float(e.mean()), "nme_median": float(e.median()), "nme_mean_pose_only": float(e0.mean()), "per_image": e.tolist()}
