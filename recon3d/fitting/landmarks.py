"""Landmark stages of the fitter: closed-form pose initialisation and a Levenberg-Marquardt fit
of pose, identity and expression to 68 2-D landmarks with a dynamic jaw contour.

Method (see docs/FITTING.md):

* :func:`init_pose_from_landmarks`: scaled-orthographic Procrustes on the non-jaw landmarks of
  the mean face in normalised image coordinates (affine least squares, then the nearest scaled
  rotation by SVD), depth ``t_z = 1 / scale``, followed by a few Gauss-Newton steps of the
  full perspective pose (an EPnP-like refinement).
* :func:`fit_landmarks`: robust (Huber, IRLS) Levenberg-Marquardt on
  ``[rotation increment (3), translation (3), shape (S), expression (E)]`` with analytic
  Jacobians of the perspective projection. Rotations are updated on the manifold,
  ``R <- exp(dw) R``, so the frontal pose (a rotation by pi, see
  :func:`recon3d.conventions.frontal_rotation`) is not a singularity. N(0, 1) priors on the
  coefficients. Before each iteration every jaw landmark picks, among its
  ``model.contour_verts`` candidates, the one that projects furthest outwards along the
  image direction of the model's x axis (the occluding contour on the side turning away;
  the frontal outline on the side turning towards the camera), as eos and 3DDFA do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .._checks import check_shapes
from ..camera import Camera, axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_pose_angles, project_points
from ..errors import ShapeError
from ..morphable.model import MorphableModel
from .losses import REF_FACE_DIAG_PX, face_size_px, gaussian_prior, huber, landmark_loss
from .params import AMBIENT_DC, DEFAULT_CONFIG, FaceParams, FitConfig, FitResult

__all__ = [
    "FitState",
    "STABLE_LANDMARKS",
    "init_pose_from_landmarks",
    "select_contour",
    "model_landmarks_px",
    "fit_landmarks",
]

log = logging.getLogger(__name__)

#: iBUG-68 indices used to initialise the pose: brows, nose, eyes, mouth (not the jaw, whose
#: 2-D position slides over the 3-D surface with the pose).
STABLE_LANDMARKS = tuple(range(17, 68))


@dataclass(frozen=True)
class FitState:
    """What a fitting callback receives at each iteration: stage name, iteration within the
    stage, current per-sample loss ``(B,)`` and current (detached) parameters."""

    stage: str
    iteration: int
    loss: torch.Tensor
    params: FaceParams


# ------------------------------------------------------------------------------------------------
# landmark bases
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _LmkBases:
    mean: torch.Tensor  # (68,3) static embedding of the mean
    shape: torch.Tensor  # (S,68,3)
    expr: torch.Tensor  # (E,68,3)
    c_idx: torch.Tensor  # (17,K) candidate vertex ids (-1 padding) or (0,0)
    c_valid: torch.Tensor  # (17,K) bool
    c_mean: torch.Tensor  # (17,K,3)
    c_shape: torch.Tensor  # (S,17,K,3)
    c_expr: torch.Tensor  # (E,17,K,3)

    @property
    def has_contour(self) -> bool:
        return self.c_idx.numel() > 0


def _lmk_bases(model: MorphableModel, S: int, E: int) -> _LmkBases:
    tri = model.faces[model.lmk_faces]  # (68,3)
    bary = model.lmk_bary[:, :, None]

    def emb(x: torch.Tensor) -> torch.Tensor:  # (..., V, 3) -> (..., 68, 3)
        return (x[..., tri, :] * bary).sum(-2)

    cv = model.contour_verts
    if cv.numel() and cv.shape[0] != 17:
        raise ShapeError(f"fit_landmarks(): model.contour_verts must be (17, K), got {tuple(cv.shape)}")
    ci = cv.clamp(min=0)
    return _LmkBases(
        mean=emb(model.mean), shape=emb(model.shape_basis[:S]), expr=emb(model.expr_basis[:E]),
        c_idx=cv, c_valid=cv >= 0, c_mean=model.mean[ci], c_shape=model.shape_basis[:S][:, ci], c_expr=model.expr_basis[:E][:, ci],
    )


def _candidates_model(b: _LmkBases, shape: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
    out = b.c_mean[None] + torch.einsum("bs,sjkc->bjkc", shape, b.c_shape)
    if expr.shape[1]:
        out = out + torch.einsum("be,ejkc->bjkc", expr, b.c_expr)
    return out  # (B,17,K,3)


def _select(b: _LmkBases, R: torch.Tensor, t: torch.Tensor, K: torch.Tensor, shape: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
    """Index into the K candidates per jaw landmark, ``(B, 17)``."""
    B = R.shape[0]
    cand = _candidates_model(b, shape, expr)  # (B,17,K,3)
    Kc = cand.shape[2]
    cam = cand.reshape(B, -1, 3) @ R.transpose(1, 2) + t[:, None]
    px = project_points(cam, K).reshape(B, 17, Kc, 2)
    d = R[:, :2, 0]  # image direction of the model +x axis
    d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    side = torch.ones(17, dtype=R.dtype, device=R.device)
    side[:8] = -1.0  # landmarks 0..7 lie on the subject's right (model -x)
    score = (px * d[:, None, None, :]).sum(-1) * side[None, :, None]
    score = torch.where(b.c_valid[None], score, torch.full_like(score, -float("inf")))
    return score.argmax(-1)


def _assemble(b: _LmkBases, sel: torch.Tensor | None, B: int):
    """Per-sample bases of the 68 landmarks with the jaw rows replaced by the selected candidates."""
    mean = b.mean[None].expand(B, -1, -1)
    shp = b.shape[None].expand(B, -1, -1, -1)
    exp = b.expr[None].expand(B, -1, -1, -1)
    if sel is None or not b.has_contour:
        return mean, shp, exp
    j = torch.arange(17, device=sel.device)
    cm = b.c_mean[j[None], sel]  # (B,17,3)
    cs = b.c_shape[:, j[None], sel].permute(1, 0, 2, 3)  # (B,S,17,3)
    ce = b.c_expr[:, j[None], sel].permute(1, 0, 2, 3)
    mean = torch.cat([cm, mean[:, 17:]], 1)
    shp = torch.cat([cs, shp[:, :, 17:]], 2)
    exp = torch.cat([ce, exp[:, :, 17:]], 2)
    return mean, shp, exp


def _points(mean, shp, exp, shape, expr):
    x = mean + torch.einsum("bs,bslc->blc", shape, shp)
    if expr.shape[1]:
        x = x + torch.einsum("be,belc->blc", expr, exp)
    return x


# ------------------------------------------------------------------------------------------------
# public helpers
# ------------------------------------------------------------------------------------------------
def _check_K(where: str, K: torch.Tensor, B: int) -> torch.Tensor:
    if K.dim() != 3 or K.shape[1:] != (3, 3) or K.shape[0] not in (1, B):
        raise ShapeError(f"{where}: K must be (B, 3, 3) or (1, 3, 3) with B={B}, got {tuple(K.shape)}")
    return K.expand(B, 3, 3)


def select_contour(model: MorphableModel, params: FaceParams, K: torch.Tensor) -> torch.Tensor:
    """The model vertex used for each jaw landmark at this pose, ``(B, 17)`` int64 (``-1`` when the
    model has no contour candidates).

    The candidate of ``model.contour_verts[j]`` that projects furthest outwards (away from the
    face centre along the image direction of the model's +x axis; -x for landmarks 0..7).
    """
    B = params.batch_size
    K = _check_K("select_contour()", K, B)
    b = _lmk_bases(model, params.shape.shape[1], params.expr.shape[1])
    if not b.has_contour:
        return torch.full((B, 17), -1, dtype=torch.int64, device=K.device)
    R = axis_angle_to_matrix(params.rot)
    sel = _select(b, R, params.trans, K, params.shape, params.expr)
    return b.c_idx[torch.arange(17, device=sel.device)[None], sel]


def model_landmarks_px(model: MorphableModel, params: FaceParams, K: torch.Tensor, *,
                       dynamic_contour: bool = True) -> torch.Tensor:
    """Project the model's 68 landmarks for ``params``: ``(B, 68, 2)`` pixels.

    With ``dynamic_contour`` the jaw landmarks follow :func:`select_contour` (as the fitter does);
    otherwise the static embedding is used. ``K`` is ``(B, 3, 3)`` or ``(1, 3, 3)``.
    """
    B = params.batch_size
    K = _check_K("model_landmarks_px()", K, B)
    S, E = params.shape.shape[1], params.expr.shape[1]
    if S > model.n_shape or E > model.n_expr:
        raise ShapeError(f"model_landmarks_px(): params have S={S}, E={E}; the model has {model.n_shape}, {model.n_expr}")
    b = _lmk_bases(model, S, E)
    R = axis_angle_to_matrix(params.rot)
    sel = _select(b, R, params.trans, K, params.shape, params.expr) if (dynamic_contour and b.has_contour) else None
    X = _points(*_assemble(b, sel, B), params.shape, params.expr)
    return project_points(X @ R.transpose(1, 2) + params.trans[:, None], K)


def init_pose_from_landmarks(lmk_px: torch.Tensor, model: MorphableModel, K: torch.Tensor, *,
                             weight: torch.Tensor | None = None, refine_iters: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form head pose from 2-D landmarks and the mean face.

    Scaled-orthographic Procrustes on :data:`STABLE_LANDMARKS` in normalised coordinates
    ``K^-1 [x, y, 1]``: affine least squares ``x_n - mean(x_n) = A (X - mean(X))``, the nearest
    scaled rotation ``s [r1; r2]`` of ``A`` by SVD, ``r3 = r1 x r2`` and depth ``t_z = 1/s``;
    then ``refine_iters`` Gauss-Newton steps of the perspective pose. Works for any yaw at which
    the stable landmarks are given (synthetic tests cover -80..80 degrees).

    Args:
        lmk_px: ``(B, 68, 2)`` landmarks, pixels.
        model: the morphable model (its mean face and landmark embedding are used).
        K: ``(B, 3, 3)`` or ``(1, 3, 3)`` intrinsics, pixels.
        weight: optional ``(B, 68)`` landmark weights (0 = missing/occluded).
        refine_iters: perspective Gauss-Newton steps after the closed form (0: none).

    Returns:
        ``(rot (B, 3) axis-angle of R_cam_from_model, trans (B, 3) metres)``.

    Raises:
        ShapeError: on wrong shapes.
    """
    check_shapes("init_pose_from_landmarks()", lmk_px=(lmk_px, "B 68 2"), weight=(weight, "B 68"))
    B = lmk_px.shape[0]
    K = _check_K("init_pose_from_landmarks()", K, B).to(lmk_px.dtype)
    if model.mean.dtype != lmk_px.dtype:
        model = model.to(dtype=lmk_px.dtype)
    b = _lmk_bases(model, 0, 0)
    idx = list(STABLE_LANDMARKS)
    X = b.mean[idx][None].expand(B, -1, -1)  # (B,N,3)
    w = torch.ones(B, len(idx), dtype=lmk_px.dtype, device=lmk_px.device) if weight is None else weight[:, idx].to(lmk_px.dtype)
    ones = torch.ones_like(lmk_px[:, idx, :1])
    xn = (torch.cat([lmk_px[:, idx], ones], -1) @ torch.linalg.inv(K).transpose(1, 2))[..., :2]
    ws = w.sum(1, keepdim=True).clamp(min=1e-9)[..., None]
    Xm = (X * w[..., None]).sum(1, keepdim=True) / ws
    xm = (xn * w[..., None]).sum(1, keepdim=True) / ws
    sw = w.sqrt()[..., None]
    At = torch.linalg.lstsq((X - Xm) * sw, (xn - xm) * sw).solution  # (B,3,2)
    U, Sv, Vh = torch.linalg.svd(At.transpose(1, 2), full_matrices=False)  # A (B,2,3)
    R2 = U @ Vh  # (B,2,3)
    R = torch.cat([R2, torch.linalg.cross(R2[:, 0], R2[:, 1])[:, None]], 1)
    s = Sv.mean(1)
    RXm = (Xm @ R.transpose(1, 2))[:, 0]  # (B,3)
    tz = 1.0 / s - RXm[:, 2]
    txy = xm[:, 0] / s[:, None] - RXm[:, :2]
    t = torch.cat([txy, tz[:, None]], 1)
    if refine_iters > 0:
        wfull = torch.zeros(B, 68, dtype=lmk_px.dtype, device=lmk_px.device)
        wfull[:, idx] = w
        zero = lmk_px.new_zeros(B, 0)
        R, t, *_ = _lm(lmk_px, wfull, b, K, R, t, zero, zero, iters=refine_iters, reg_shape=0.0, reg_expr=0.0,
                       huber_px=None, dynamic_contour=False, tol=1e-10)
    return matrix_to_axis_angle(R), t


# ------------------------------------------------------------------------------------------------
# Levenberg-Marquardt
# ------------------------------------------------------------------------------------------------
def _energy(X_cam, K, target, w, fsize, shape, expr, reg_shape, reg_expr, huber_px):
    px = project_points(X_cam, K)
    e = landmark_loss(px, target, weight=w, face_size=fsize, huber_px=huber_px)
    return e + reg_shape * gaussian_prior(shape) + reg_expr * gaussian_prior(expr), e


def _lm(target, w, b: _LmkBases, K, R, t, shape, expr, *, iters, reg_shape, reg_expr, huber_px, dynamic_contour,
        tol, callback=None, history=None, stage="landmarks"):
    """Robust LM; returns R, t, shape, expr, sel, n_iters, converged."""
    B = target.shape[0]
    S, E = shape.shape[1], expr.shape[1]
    P = 6 + S + E
    dt, dev = target.dtype, target.device
    fsize = face_size_px(target, w)
    norm = (REF_FACE_DIAG_PX / fsize)  # px -> reference px
    lam = torch.full((B,), 1e-3, dtype=dt, device=dev)
    prior_diag = torch.cat([torch.zeros(6, dtype=dt, device=dev), torch.full((S,), reg_shape, dtype=dt, device=dev),
                            torch.full((E,), reg_expr, dtype=dt, device=dev)])
    active = torch.ones(B, dtype=torch.bool, device=dev)
    use_contour = dynamic_contour and b.has_contour
    sel = None
    n_done = 0
    for it in range(iters):
        if use_contour:
            sel = _select(b, R, t, K, shape, expr)
        mean, shp, exp = _assemble(b, sel, B)
        X = _points(mean, shp, exp, shape, expr)
        RX = X @ R.transpose(1, 2)
        Xc = RX + t[:, None]
        E0, lmk_e = _energy(Xc, K, target, w, fsize, shape, expr, reg_shape, reg_expr, huber_px)
        if history is not None:
            history.setdefault(f"{stage}/total", []).append(float(E0.mean()))
            history.setdefault(f"{stage}/lmk", []).append(float(lmk_e.mean()))
        # Jacobian of the projection (B,68,2,3)
        z = Xc[..., 2:3].clamp(min=1e-6)
        px = project_points(Xc, K)
        Kr = K[:, None, :2, :]  # (B,1,2,3)
        dp = (Kr - px[..., :, None] * K[:, None, 2:3, :]) / z[..., None]
        # dXc/dw = -[RX]_x, dXc/dt = I, dXc/dc = R basis
        zero = torch.zeros_like(RX[..., 0])
        skew = torch.stack([zero, RX[..., 2], -RX[..., 1], -RX[..., 2], zero, RX[..., 0], RX[..., 1], -RX[..., 0], zero],
                           -1).reshape(B, 68, 3, 3)  # = -[RX]_x
        eye = torch.eye(3, dtype=dt, device=dev).expand(B, 68, 3, 3)
        cols = [skew, eye, torch.einsum("bij,bslj->blis", R, shp)]
        if E:
            cols.append(torch.einsum("bij,belj->blie", R, exp))
        dX = torch.cat(cols, -1)  # (B,68,3,P)
        J = (dp @ dX) * norm[:, None, None, None]  # (B,68,2,P) in reference px
        r = (px - target) * norm[:, None, None]  # (B,68,2)
        dist = r.norm(dim=-1)
        irls = torch.ones_like(dist) if huber_px is None else torch.where(dist <= huber_px, torch.ones_like(dist), huber_px / dist.clamp(min=1e-12))
        ww = (w * irls / w.sum(1, keepdim=True).clamp(min=1e-12))  # (B,68)
        Jf = J.reshape(B, 136, P)
        wf = ww.repeat_interleave(2, dim=1)
        H = Jf.transpose(1, 2) @ (Jf * wf[..., None]) + torch.diag(prior_diag)[None]
        coeffs = torch.cat([shape, expr], 1)
        g = Jf.transpose(1, 2) @ (r.reshape(B, 136) * wf)[..., None]
        g = g[..., 0] + torch.cat([torch.zeros(B, 6, dtype=dt, device=dev), coeffs * prior_diag[6:]], 1)
        # try steps, increasing damping where the energy does not drop (a few tries per iteration)
        accepted = torch.zeros(B, dtype=torch.bool, device=dev)
        newR, newt, newc = R, t, coeffs
        for _ in range(4):
            Hd = H + lam[:, None, None] * torch.diag_embed(H.diagonal(dim1=1, dim2=2) + 1e-9)
            delta = -torch.linalg.solve(Hd, g[..., None])[..., 0]
            Rt = axis_angle_to_matrix(delta[:, :3]) @ R
            tt = t + delta[:, 3:6]
            ct = coeffs + delta[:, 6:]
            st, et = ct[:, :S], ct[:, S:]
            Xt = _points(mean, shp, exp, st, et) @ Rt.transpose(1, 2) + tt[:, None]
            E1, _ = _energy(Xt, K, target, w, fsize, st, et, reg_shape, reg_expr, huber_px)
            ok = (E1 <= E0) & ~accepted & active & torch.isfinite(E1)
            m = ok[:, None]
            newR = torch.where(m[..., None], Rt, newR)
            newt = torch.where(m, tt, newt)
            newc = torch.where(m, ct, newc)
            rel = (E0 - E1) / E0.clamp(min=1e-12)
            done_now = ok & (rel < tol)
            accepted = accepted | ok
            lam = torch.where(ok, (lam / 3.0).clamp(min=1e-7), lam * 8.0)
            active = active & ~done_now
            if bool((accepted | ~active).all()):
                break
        # a sample whose step failed after all tries has converged (to within damping)
        active = active & accepted
        R, t = newR, newt
        shape, expr = newc[:, :S], newc[:, S:]
        n_done = it + 1
        if callback is not None:
            callback(it, FitState(stage, it, E0.detach(), _params_from(R, t, shape, expr).detach()))
        if not bool(active.any()):
            break
    if use_contour:
        sel = _select(b, R, t, K, shape, expr)
    return R, t, shape, expr, sel, n_done, not bool(active.any())


def _params_from(R, t, shape, expr, albedo=None, light=None) -> FaceParams:
    B = R.shape[0]
    if albedo is None:
        albedo = R.new_zeros(B, 0)
    if light is None:
        light = R.new_zeros(B, 9, 3)
        light[:, 0] = AMBIENT_DC
    return FaceParams(shape=shape, expr=expr, albedo=albedo, rot=matrix_to_axis_angle(R), trans=t, light=light)


def _image_size_from_K(K: torch.Tensor) -> tuple[int, int]:
    return int(round(2 * float(K[0, 1, 2]) + 1)), int(round(2 * float(K[0, 0, 2]) + 1))


def fit_landmarks(lmk_px: torch.Tensor, *, model: MorphableModel, K: torch.Tensor, config: FitConfig = DEFAULT_CONFIG,
                  init: FaceParams | FitResult | None = None, weight: torch.Tensor | None = None,
                  image_size: tuple[int, int] | None = None,
                  callback: Callable[[int, FitState], None] | None = None) -> FitResult:
    """Fit pose, identity and expression to 68 landmarks (robust LM, dynamic jaw contour, priors).

    Args:
        lmk_px: ``(B, 68, 2)`` iBUG-68 landmarks, pixels (0-based, pixel centres at integers).
        model: the morphable model.
        K: ``(B, 3, 3)`` or ``(1, 3, 3)`` intrinsics (e.g. :func:`~recon3d.fitting.default_intrinsics`).
        config: iterations (``lmk_iters``), Huber threshold, prior weights, ``n_shape``/``n_expr``.
        init: starting parameters (default: :func:`init_pose_from_landmarks`, zero coefficients).
            Its albedo and light are carried through unchanged.
        weight: optional ``(B, 68)`` landmark weights (0 = missing/occluded).
        image_size: ``(H, W)`` for the returned camera (default: from the principal point).
        callback: called as ``callback(iteration, FitState)`` after each LM iteration.

    Returns:
        :class:`FitResult` with ``face_mask=None``; ``losses`` has ``landmarks/total`` and
        ``landmarks/lmk`` (normalised, squared reference-face pixels) per iteration.

    Raises:
        ShapeError: on wrong shapes.
    """
    t0 = time.perf_counter()
    check_shapes("fit_landmarks()", lmk_px=(lmk_px, "B 68 2"), weight=(weight, "B 68"))
    if not torch.is_floating_point(lmk_px):
        raise ShapeError(f"fit_landmarks(): lmk_px must be floating point, got {lmk_px.dtype}")
    B = lmk_px.shape[0]
    K = _check_K("fit_landmarks()", K, B).to(lmk_px.dtype)
    model = model.to(dtype=lmk_px.dtype) if model.mean.dtype != lmk_px.dtype else model
    S = model.n_shape if config.n_shape is None else min(config.n_shape, model.n_shape)
    E = model.n_expr if config.n_expr is None else min(config.n_expr, model.n_expr)
    T = model.n_albedo if config.n_albedo is None else min(config.n_albedo, model.n_albedo)
    w = torch.ones(B, 68, dtype=lmk_px.dtype, device=lmk_px.device) if weight is None else weight.to(lmk_px.dtype)
    if isinstance(init, FitResult):
        init = init.params
    if init is None:
        rot, trans = init_pose_from_landmarks(lmk_px, model, K, weight=w)
        init = FaceParams.zeros(model, B, n_shape=S, n_expr=E, n_albedo=T)
        init = FaceParams(init.shape, init.expr, init.albedo, rot, trans, init.light)
    if init.batch_size != B:
        raise ShapeError(f"fit_landmarks(): init has batch {init.batch_size}, lmk_px has {B}")
    shape = _resize(init.shape, S)
    expr = _resize(init.expr, E)
    t_init = time.perf_counter() - t0
    b = _lmk_bases(model, S, E)
    history: dict[str, list[float]] = {}
    R, t, shape, expr, sel, n, conv = _lm(
        lmk_px, w, b, K, axis_angle_to_matrix(init.rot), init.trans, shape, expr, iters=config.lmk_iters,
        reg_shape=config.w_reg_shape / config.w_lmk, reg_expr=config.w_reg_expr / config.w_lmk,
        huber_px=config.lmk_huber_px, dynamic_contour=config.dynamic_contour, tol=config.tol, callback=callback, history=history)
    params = FaceParams(shape=shape, expr=expr, albedo=init.albedo, rot=matrix_to_axis_angle(R), trans=t, light=init.light)
    res = _make_result(model, params, K, image_size or _image_size_from_K(K), sel, b, history, n, conv)
    return _with_timings(res, {"init": t_init, "landmarks": time.perf_counter() - t0 - t_init})


def _resize(c: torch.Tensor, n: int) -> torch.Tensor:
    if c.shape[1] >= n:
        return c[:, :n]
    return torch.cat([c, c.new_zeros(c.shape[0], n - c.shape[1])], 1)


def _make_result(model, params: FaceParams, K, image_size, sel, b: _LmkBases, history, n, conv, face_mask=None) -> FitResult:
    R = axis_angle_to_matrix(params.rot)
    B = R.shape[0]
    verts = model.shape(params.shape, params.expr)
    verts_cam = verts @ R.transpose(1, 2) + params.trans[:, None]
    X = _points(*_assemble(b, sel, B), params.shape, params.expr)
    lmk = project_points(X @ R.transpose(1, 2) + params.trans[:, None], K)
    cidx = None
    if sel is not None:
        cidx = b.c_idx[torch.arange(17, device=sel.device)[None], sel]
    res = FitResult(params=params, camera=Camera(K=K, R=R, t=params.trans, image_size=tuple(image_size)),
                    verts_model=verts, verts_cam=verts_cam, lmk_px=lmk, pose_deg=torch.rad2deg(matrix_to_pose_angles(R)),
                    face_mask=face_mask, losses=history, n_iters=n, converged=conv, contour_idx=cidx)
    return replace(res)


def _with_timings(res: FitResult, timings: dict) -> FitResult:
    return replace(res, timings={**res.timings, **timings})


_ = huber  # the Huber weights used by the IRLS above are those of losses.huber
