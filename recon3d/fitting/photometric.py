"""Photometric (analysis-by-synthesis) stage of the fitter.

The image is cropped around the face and resized to ``config.photo_res`` (the intrinsics are
mapped to the crop so the geometry is unchanged), the face is rendered with
:func:`recon3d.render.render_mesh` (per-vertex albedo ``model.albedo(albedo)`` times per-pixel
second-order SH shading, antialiased silhouettes) and pose, shape, expression, albedo and light
are refined with Adam on

    w_photo * photometric_loss(render, crop, face_weight * coverage)      (robust, see losses)
  + w_lmk_photo * landmark_loss(...)
  + w_reg_photo * (|shape|^2 + |expr|^2) + w_reg_albedo * |albedo|^2.

The SH light starts from a ridge least-squares fit on the visible vertices (image colour =
albedo x shading), so the first iterations do not fight a wrong light. The pixel weight is the
model's ``face_weight`` interpolated over the rendered face (ears, neck, hair region get 0).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Callable

import torch
import torch.nn.functional as F

from .. import render
from .._checks import check_shapes
from ..camera import Camera, axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_pose_angles
from ..conventions import opencv_to_opengl_cam
from ..errors import ShapeError
from ..morphable.model import MorphableModel
from ..ops.crop import integer_crop_boxes as crop_boxes
from ..ops.geometry import vertex_normals
from ..render.rasterizer import fragments_from_tri_id, project_to_px
from .landmarks import FitState, _assemble, _check_K, _lmk_bases, _points, _select
from .losses import face_size_px, gaussian_prior, landmark_loss, photometric_loss
from .params import DEFAULT_CONFIG, FaceParams, FitConfig, FitResult

__all__ = ["crop_boxes", "crop_image", "crop_intrinsics", "init_light", "render_face", "face_weight_map",
           "fit_photometric"]

log = logging.getLogger(__name__)

# parameter scaling for Adam (one unit of the optimised variable): rotation 0.05 rad,
# translation 1 cm sideways and 5 cm in depth.
_ROT_UNIT = 0.05
_TRANS_UNIT = (0.01, 0.01, 0.05)
# albedo coefficients (one sigma changes the colour by a few percent) take larger steps; the
# light's DC term (~1.1) scales the whole face, so it takes smaller ones.
_ALBEDO_LR_FACTOR = 2.0
_LIGHT_LR_FACTOR = 0.3


# ------------------------------------------------------------------------------------------------
# cropping
# ------------------------------------------------------------------------------------------------
def crop_intrinsics(K: torch.Tensor, boxes: torch.Tensor, res: int) -> torch.Tensor:
    """Intrinsics of the crop ``boxes`` resized to ``res x res``: ``(B, 3, 3)``.

    A pixel ``x`` of the image maps to ``x' = (x - x0 + 0.5) * res / side - 0.5`` in the crop
    (pixel centres at integers in both).

    >>> K = torch.tensor([[[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]]])
    >>> crop_intrinsics(K, torch.tensor([[25, 25, 50]]), 100)[0].tolist()
    [[200.0, 0.0, 50.5], [0.0, 200.0, 50.5], [0.0, 0.0, 1.0]]
    """
    B = boxes.shape[0]
    s = res / boxes[:, 2].to(K.dtype)
    A = torch.zeros(B, 3, 3, dtype=K.dtype, device=K.device)
    A[:, 0, 0] = s
    A[:, 1, 1] = s
    A[:, 0, 2] = s * (0.5 - boxes[:, 0].to(K.dtype)) - 0.5
    A[:, 1, 2] = s * (0.5 - boxes[:, 1].to(K.dtype)) - 0.5
    A[:, 2, 2] = 1.0
    return A @ K.expand(B, 3, 3)


def crop_image(image: torch.Tensor, boxes: torch.Tensor, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``(B, H, W, 3)`` images to ``boxes`` and resize to ``res`` (antialiased bilinear).

    Returns:
        ``(crop (B, res, res, 3), valid (B, res, res))``; ``valid`` is 0 where the box left the
        image (those pixels are black and must not count in a loss).
    """
    check_shapes("crop_image()", image=(image, "B H W 3"), boxes=(boxes, "B 3"))
    B, H, W, _ = image.shape
    chw = torch.cat([image, torch.ones_like(image[..., :1])], -1).permute(0, 3, 1, 2)
    out = []
    for b in range(B):
        x0, y0, side = (int(v) for v in boxes[b])
        pl, pt = max(0, -x0), max(0, -y0)
        pr, pb = max(0, x0 + side - W), max(0, y0 + side - H)
        patch = F.pad(chw[b:b + 1], (pl, pr, pt, pb))
        patch = patch[:, :, y0 + pt: y0 + pt + side, x0 + pl: x0 + pl + side]
        out.append(F.interpolate(patch, size=(res, res), mode="bilinear", align_corners=False,
                                 antialias=side > res))
    o = torch.cat(out, 0).permute(0, 2, 3, 1)
    return o[..., :3].clamp(0.0, 1.0), (o[..., 3] > 0.999).to(image.dtype)


# ------------------------------------------------------------------------------------------------
# rendering helpers
# ------------------------------------------------------------------------------------------------
def render_face(model: MorphableModel, params: FaceParams, K: torch.Tensor, image_size: tuple[int, int], *,
                antialias: bool = True, topology=None):
    """Render the fitted face (albedo x SH shading) with :func:`recon3d.render.render_mesh`.

    Returns:
        ``(RenderOutput, verts_cam (B, V, 3))``.
    """
    r = render
    R = axis_angle_to_matrix(params.rot)
    verts_cam = model.shape(params.shape, params.expr) @ R.transpose(1, 2) + params.trans[:, None]
    albedo = model.albedo(params.albedo, batch=params.batch_size)
    out = r.render_mesh(verts_cam, model.faces, K, image_size, vert_colors=albedo, light=params.light,
                        antialias=antialias, topology=topology)
    return out, verts_cam


def face_weight_map(model: MorphableModel, verts_cam: torch.Tensor, K: torch.Tensor, tri_id: torch.Tensor) -> torch.Tensor:
    """The model's ``face_weight`` interpolated over the visible surface, ``(B, H, W)`` (0 outside).

    Not differentiable (a pixel weight, not a fitted quantity).
    """
    with torch.no_grad():
        frags = fragments_from_tri_id(project_to_px(verts_cam.detach(), K), model.faces, tri_id)
        w = render.interpolate(model.face_weight[:, None].to(verts_cam.dtype), frags, model.faces)[..., 0]
    return (w * (tri_id >= 0).to(w.dtype)).clamp(0.0, 1.0)


def init_light(image: torch.Tensor, verts_cam: torch.Tensor, albedo: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, *,
               vert_weight: torch.Tensor | None = None, reg: float = 1e-2) -> torch.Tensor:
    """Ridge least-squares SH light ``(B, 9, 3)`` from the image colours at the visible vertices.

    Solves, per sample and channel, ``min sum_v w_v (albedo_vc * Y(n_v) . l_c - I_vc)^2 +
    reg * sum_v w_v * |l_c - ambient|^2`` with ``Y`` the Lambertian SH basis of the vertex normal
    (in the renderer's OpenGL camera frame). A vertex counts when it faces the camera and projects
    inside the image; ``vert_weight (V,)`` scales it further (e.g. the model's face_weight).

    Args:
        image: ``(B, H, W, 3)``.
        verts_cam: ``(B, V, 3)`` camera-frame vertices.
        albedo: ``(B, V, 3)``.
        faces: ``(F, 3)``.
        K: ``(B, 3, 3)`` intrinsics of ``image``.
    """
    r = render
    check_shapes("init_light()", image=(image, "B H W 3"), verts_cam=(verts_cam, "B V 3"), albedo=(albedo, "B V 3"),
                 K=(K, "B 3 3"))
    B, H, W, _ = image.shape
    with torch.no_grad():
        n = vertex_normals(verts_cam, faces)
        px = r.project_to_px(verts_cam, K)[..., :2]
        facing = ((n * verts_cam).sum(-1) < 0)
        inside = (px[..., 0] > 0) & (px[..., 0] < W - 1) & (px[..., 1] > 0) & (px[..., 1] < H - 1)
        w = (facing & inside).to(image.dtype)
        if vert_weight is not None:
            w = w * vert_weight[None].to(image.dtype)
        grid = torch.stack([(2 * px[..., 0] + 1) / W - 1, (2 * px[..., 1] + 1) / H - 1], -1)[:, :, None]
        col = F.grid_sample(image.permute(0, 3, 1, 2), grid, mode="bilinear", align_corners=False)[..., 0].permute(0, 2, 1)
        Y = r.sh_basis(opencv_to_opengl_cam(n))  # (B,V,9)
        A = albedo.permute(0, 2, 1)[..., None] * Y[:, None]  # (B,3,V,9)
        Wv = w[:, None, :, None]
        ws = w.sum(1).clamp(min=1.0)[:, None, None, None]
        amb = r.ambient_light(B, dtype=image.dtype, device=image.device).permute(0, 2, 1)  # (B,3,9)
        AtA = (A * Wv).transpose(-1, -2) @ A + reg * ws * torch.eye(9, dtype=image.dtype, device=image.device)
        Atb = ((A * Wv).transpose(-1, -2) @ col.permute(0, 2, 1)[..., None])[..., 0] + reg * ws[..., 0] * amb
        light = torch.linalg.solve(AtA, Atb[..., None])[..., 0]  # (B,3,9)
    return light.permute(0, 2, 1).contiguous()


# ------------------------------------------------------------------------------------------------
# the stage
# ------------------------------------------------------------------------------------------------
def fit_photometric(image: torch.Tensor, lmk_px: torch.Tensor, *, model: MorphableModel, K: torch.Tensor,
                    config: FitConfig = DEFAULT_CONFIG, init: FitResult,
                    callback: Callable[[int, FitState], None] | None = None) -> FitResult:
    """Refine a landmark fit by analysis-by-synthesis on the image.

    Args:
        image: ``(B, H, W, 3)`` float RGB in [0, 1], row 0 on top.
        lmk_px: ``(B, 68, 2)`` target landmarks, pixels of ``image``.
        model: the morphable model.
        K: ``(B, 3, 3)`` or ``(1, 3, 3)`` intrinsics of ``image`` (the same as the landmark stage).
        config: ``photo_iters``, ``photo_lr``, ``photo_res``, ``crop_scale``, weights, ``robust``.
        init: the landmark-stage :class:`FitResult` (pose, shape, expression; albedo/light are
            re-initialised when the light is ambient).
        callback: ``callback(iteration, FitState)`` after each Adam step.

    Returns:
        :class:`FitResult` with ``face_mask (B, H, W)`` (rendered face weight at full resolution)
        and ``losses['photo/total' | 'photo/photo' | 'photo/lmk']``.

    Raises:
        ShapeError: on wrong shapes.
    """
    t0 = time.perf_counter()
    dims = check_shapes("fit_photometric()", image=(image, "B H W 3"), lmk_px=(lmk_px, "B 68 2"))
    if not torch.is_floating_point(image):
        raise ShapeError(f"fit_photometric(): image must be float RGB in [0, 1], got {image.dtype}")
    B, H, W = dims["B"], image.shape[1], image.shape[2]
    if init.params.batch_size != B:
        raise ShapeError(f"fit_photometric(): init has batch {init.params.batch_size}, image has {B}")
    dt, dev = image.dtype, image.device
    K = _check_K("fit_photometric()", K, B).to(dt)
    lmk_px = lmk_px.to(dt)
    if model.mean.dtype != dt:
        model = model.to(dtype=dt)
    r = render
    res = int(config.photo_res)
    p0 = init.params.detach()
    T = model.n_albedo if config.n_albedo is None else min(config.n_albedo, model.n_albedo)
    albedo0 = p0.albedo[:, :T] if p0.albedo.shape[1] >= T else torch.cat([p0.albedo, p0.albedo.new_zeros(B, T - p0.albedo.shape[1])], 1)

    boxes = crop_boxes(lmk_px, config.crop_scale)
    crop, valid = crop_image(image, boxes, res)
    Kc = crop_intrinsics(K, boxes, res)
    topo = r.edge_topology(model.faces)
    R0 = axis_angle_to_matrix(p0.rot)

    light0 = p0.light
    if torch.allclose(light0, r.ambient_light(B, dtype=dt, device=dev)):
        vc = model.shape(p0.shape, p0.expr) @ R0.transpose(1, 2) + p0.trans[:, None]
        light0 = init_light(crop, vc, model.albedo(albedo0, batch=B), model.faces, Kc, vert_weight=model.face_weight,
                            reg=config.light_reg)
    t_setup = time.perf_counter() - t0

    d_rot = torch.zeros(B, 3, dtype=dt, device=dev, requires_grad=True)
    d_trans = torch.zeros(B, 3, dtype=dt, device=dev, requires_grad=True)
    shape = p0.shape.clone().requires_grad_(True)
    expr = p0.expr.clone().requires_grad_(True)
    albedo = albedo0.clone().requires_grad_(True)
    light = light0.clone().requires_grad_(True)
    tunit = torch.tensor(_TRANS_UNIT, dtype=dt, device=dev)
    lr = config.photo_lr
    opt = torch.optim.Adam([
        {"params": [d_rot, d_trans], "lr": lr},
        {"params": [shape, expr], "lr": lr},
        {"params": [albedo], "lr": _ALBEDO_LR_FACTOR * lr},
        {"params": [light], "lr": _LIGHT_LR_FACTOR * lr},
    ], betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - 0.9 * i / max(1, config.photo_iters))

    b = _lmk_bases(model, shape.shape[1], expr.shape[1])
    fsize = face_size_px(lmk_px)
    sel = _select(b, R0, p0.trans, K, p0.shape, p0.expr) if (b.has_contour and config.dynamic_contour) else None

    def current():
        R = axis_angle_to_matrix(d_rot * _ROT_UNIT) @ R0
        t = p0.trans + d_trans * tunit
        return FaceParams(shape=shape, expr=expr, albedo=albedo, rot=matrix_to_axis_angle(R), trans=t, light=light), R, t

    history: dict[str, list[float]] = {}
    n_done = 0
    for it in range(config.photo_iters):
        opt.zero_grad(set_to_none=True)
        params, R, t = current()
        verts_cam = model.shape(shape, expr) @ R.transpose(1, 2) + t[:, None]
        alb = model.albedo(albedo, batch=B)
        out = r.render_mesh(verts_cam, model.faces, Kc, (res, res), vert_colors=alb, light=light, antialias=config.photo_antialias,
                            topology=topo)
        wmap = face_weight_map(model, verts_cam, Kc, out.tri_id) * out.mask[..., 0].detach() * valid
        l_photo = photometric_loss(out.image, crop, wmap, robust=config.robust, scale=config.robust_scale)
        if b.has_contour and config.dynamic_contour and it % 10 == 0:
            sel = _select(b, R.detach(), t.detach(), K, shape.detach(), expr.detach())
        X = _points(*_assemble(b, sel, B), shape, expr)
        lmk_pred = r.project_to_px(X @ R.transpose(1, 2) + t[:, None], K)[..., :2]
        l_lmk = landmark_loss(lmk_pred, lmk_px, face_size=fsize, huber_px=config.lmk_huber_px)
        total = (config.w_photo * l_photo + config.w_lmk_photo * l_lmk
                 + config.w_reg_photo * (gaussian_prior(shape) + gaussian_prior(expr))
                 + config.w_reg_albedo * gaussian_prior(albedo))
        total.sum().backward()
        opt.step()
        sched.step()
        history.setdefault("photo/total", []).append(float(total.detach().mean()))
        history.setdefault("photo/photo", []).append(float(l_photo.detach().mean()))
        history.setdefault("photo/lmk", []).append(float(l_lmk.detach().mean()))
        n_done = it + 1
        if callback is not None:
            callback(it, FitState("photometric", it, total.detach(), params.detach()))
    t_opt = time.perf_counter() - t0 - t_setup

    with torch.no_grad():
        params, R, t = current()
        params = params.detach()
        verts = model.shape(params.shape, params.expr)
        verts_cam = verts @ R.transpose(1, 2) + t[:, None]
        if b.has_contour and config.dynamic_contour:
            sel = _select(b, R, t, K, params.shape, params.expr)
        X = _points(*_assemble(b, sel, B), params.shape, params.expr)
        lmk_fit = r.project_to_px(X @ R.transpose(1, 2) + t[:, None], K)[..., :2]
        full = r.render_mesh(verts_cam, model.faces, K, (H, W), antialias=False)
        face_mask = face_weight_map(model, verts_cam, K, full.tri_id)
    cidx = None if sel is None else b.c_idx[torch.arange(17, device=dev)[None], sel]
    losses = {**init.losses, **history}
    timings = {**init.timings, "photo_setup": t_setup, "photometric": t_opt,
               "photo_finish": time.perf_counter() - t0 - t_setup - t_opt}
    log.debug("fit_photometric: %d iterations in %.3fs (%.1f ms/iter)", n_done, t_opt, 1000 * t_opt / max(1, n_done))
    return replace(init, params=params, camera=Camera(K=K, R=R, t=t, image_size=(H, W)), verts_model=verts,
                   verts_cam=verts_cam, lmk_px=lmk_fit, pose_deg=torch.rad2deg(matrix_to_pose_angles(R)),
                   face_mask=face_mask, losses=losses, n_iters=init.n_iters + n_done, timings=timings,
                   contour_idx=cidx)


_ = math
