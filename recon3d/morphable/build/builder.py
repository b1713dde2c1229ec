"""The model builder's main sequence, :func:`build_model` (steps in :mod:`recon3d.morphable.build`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...conventions import IBUG68_MIRROR, frontal_rotation, mirror_points_px
from ...errors import AssetError, ShapeError
from ..model import MorphableModel
from . import geometry as geo
from . import landmarks as lmk
from .albedo import build_albedo
from .data import BuildData, mediapipe_to_model_axes
from .geometry import apply_operator, mirror_x

log = logging.getLogger(__name__)

__all__ = ["BuildConfig", "build_model"]


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


def _procrustes_weights(pbtxt: Path, n: int) -> np.ndarray:
    w = np.zeros(n)
    for m in re.finditer(r"landmark_id:\s*(\d+)\s+weight:\s*([0-9.eE+-]+)", pbtxt.read_text()):
        w[int(m.group(1))] = float(m.group(2))
    if not w.any():
        raise AssetError(f"{pbtxt}: no procrustes_landmark_basis entries")
    return w


def _mirror(points: np.ndarray, sym: np.ndarray) -> np.ndarray:
    """Mirror model-frame shapes (..., V, 3) left <-> right and re-index so vertex i stays vertex i."""
    return mirror_x(points)[..., sym, :]


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
    sym0 = geo.symmetry_map(canon_v, mirror_x)
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
    S, faces = geo.subdivide(faces0, n0, cfg.subdivisions)
    V = S.shape[0]
    mean = apply_operator(S, mean0)
    shape_basis = apply_operator(S, (I_dir * np.sqrt(I_var)[:, None]).reshape(-1, n0, 3))
    expr_basis = apply_operator(S, (E_dir * np.sqrt(E_var)[:, None]).reshape(-1, n0, 3))
    # Symmetry map of the subdivided mesh (subdivision commutes with mirroring).
    sym = geo.sym_from_operator(S, sym0)
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
    P2 = apply_operator(S, X_all[tr_idx] @ Rf.T)[..., :2]  # back to image pixels (x right, y down)
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
    normals = geo.vertex_normals_np(mean, faces)
    bnd = geo.boundary_vertices(faces, V)
    border = bnd.copy()
    nbr = geo.neighbours(faces, V)
    for _ in range(3):
        border = border | (nbr @ border.astype(float) > 0)
    contour = lmk.contour_candidates(mean, lmk3d, bnd)
    labels, face_w = lmk.region_labels(mean, normals, lmk3d, border)

    # -- 5. albedo ---------------------------------------------------------------------------------------
    alb_idx = tr_idx if not cfg.albedo_image_limit else np.sort(rng.choice(tr_idx, cfg.albedo_image_limit, replace=False))
    albedo_mean, albedo_basis, albedo_var, alb_rep = build_albedo(
        data.paths, alb_idx, X_all, S, faces, sym, cfg.n_albedo, load_image, progress)
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
