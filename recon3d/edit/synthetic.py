"""A synthetic :class:`~recon3d.structures.Reconstruction` (toy 3DMM rendered over a textured
background) for tests, examples and debugging of the edits without a photo or a fitted model."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..camera import Camera, intrinsics_from_fov, matrix_to_axis_angle, pose_angles_to_matrix
from ..fitting import FaceParams, FitResult
from ..morphable.toy import make_toy_model
from ..render import ambient_light, render_mesh
from ..structures.reconstruction import Reconstruction
from ..texture import uv_raster
from ..texture.from_fit import texture_from_fit

__all__ = ["make_synthetic_reconstruction"]


def make_synthetic_reconstruction(*, size: int = 160, yaw_deg: float = 10.0, pitch_deg: float = 0.0,
                                  texture_size: int = 128, seed: int = 0):
    """Render the toy morphable model (:func:`recon3d.morphable.toy.make_toy_model`) lit by SH over a
    smooth coloured background with stripes, and wrap the *true* parameters in a
    :class:`~recon3d.structures.Reconstruction` (the "fit" is exact, the texture is unwrapped from
    the rendered image and completed as the pipeline does).

    Args:
        size: image side (pixels).
        yaw_deg, pitch_deg: head pose.
        texture_size: UV texture side.
        seed: seed of the albedo coefficients.

    Returns:
        A ``Reconstruction`` with ``name="synthetic"``.
    """
    g = torch.Generator().manual_seed(seed)
    model = make_toy_model()
    H = W = int(size)
    K = intrinsics_from_fov(32.0, (H, W))
    ypr = torch.tensor([math.radians(yaw_deg), math.radians(pitch_deg), 0.0])
    R = pose_angles_to_matrix(ypr)[None]
    t = torch.tensor([[0.0, 0.01, 0.6]])
    cam = Camera(K=K, R=R, t=t, image_size=(H, W))
    albedo_c = 0.5 * torch.randn(1, model.n_albedo, generator=g)
    params = FaceParams(shape=torch.zeros(1, model.n_shape), expr=torch.zeros(1, model.n_expr), albedo=albedo_c,
                        rot=matrix_to_axis_angle(R), trans=t, light=ambient_light(1) * 0.9)
    light = params.light.clone()
    light[0, 2] = torch.tensor([0.25, 0.22, 0.2])  # a bit of light from above (OpenGL +Y)
    light[0, 1] = torch.tensor([0.15, 0.15, 0.15])
    params = FaceParams(params.shape, params.expr, params.albedo, params.rot, params.trans, light)
    verts_model = model.shape(params.shape, params.expr)
    verts_cam = cam.to_cam(verts_model)
    albedo_v = model.albedo(params.albedo).clamp(0, 1)

    yy, xx = np.mgrid[0:H, 0:W] / float(max(H, W))
    bg = np.stack([0.25 + 0.4 * xx, 0.35 + 0.3 * yy, 0.55 - 0.2 * xx], -1)
    bg += 0.08 * np.sign(np.sin(xx * 40.0))[..., None]
    bg = torch.from_numpy(bg.astype(np.float32)).clamp(0, 1)
    out = render_mesh(verts_cam, model.faces, K, (H, W), vert_colors=albedo_v, light=light, background=bg[None])
    image = out.image[0].clamp(0, 1)

    uvr = uv_raster(model, resolution=texture_size)
    tex = texture_from_fit(image[None], verts_cam, model.faces, K, uvr, albedo_v=albedo_v,
                           light=params.light.detach().float())
    lmk_px = cam.project(model.landmarks(verts_model))
    fit = FitResult(params=params, camera=cam, verts_model=verts_model, verts_cam=verts_cam, lmk_px=lmk_px,
                    pose_deg=torch.rad2deg(ypr)[None], face_mask=out.mask[..., 0], converged=True)
    return Reconstruction(
        image=image, name="synthetic", image_path=None, lmk_detected_px=lmk_px[0], detection_method="synthetic",
        fit=fit, model=model, verts_model=verts_model[0], texture=tex.texture[0].clamp(0, 1),
        texture_visible=(tex.texture_visible[0] * tex.visible[0, ..., None]), texture_mask=tex.confidence[0],
    )

