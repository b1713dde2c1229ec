"""Pose editing of a reconstructed face: rotate the head in the photo, or frontalize it.

Method (3DDFA's "face profiling" idea, seed 000 / thesis ch. 3, made training-free):

1. The fitted face mesh is rotated about an estimated head centre (the vertex centroid pushed
   back by 0.35 face widths along the model's -Z) by the change of head pose (yaw, pitch, roll in
   the convention of :mod:`recon3d.conventions`).
2. The whole image is meshed: the mesh's boundary vertices (the face outline, and the eye/mouth
   holes when the model has them) plus rings of anchors around the face at 1.3, 1.7 and 2.3 times
   the face's radius in 24 directions plus fixed points on the image border, triangulated with
   Delaunay. Anchors get the depth of the face boundary in their direction and move with the
   rotated head with a weight falling from 0.75 (inner ring) to 0.1 (outer ring) and 0 on the
   border, so hair and neck follow the head and the far background stays put. The photo is
   warped piecewise-affinely over that mesh (:func:`recon3d.render.warp.warp_triangles`).
3. Warped triangles stretched more than 3x have no real source; they are filled by harmonic
   (membrane) interpolation from their border.
4. The rotated face is rendered with the completed UV texture (by default re-completed from the
   photo keeping the visible texels exactly, see :func:`rotate_views`), de-lit by the fitted
   shading and relit by the fitted SH at the new pose (the light stays fixed in the camera frame), and pasted;
   a 4-pixel band along its silhouette is Poisson-blended (:func:`recon3d.ops.poisson.poisson_blend`)
   into the warped background.

Rotating by 0 reproduces the photo up to the texture's resampling inside the face (mean absolute
error below 0.03 on the synthetic toy face, see tests/test_edit_rotate.py) and exactly (warp of
identity) outside it, apart from the antialiased silhouette and the seam band.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_shapes
from ..camera import matrix_to_pose_angles, pose_angles_to_matrix
from ..errors import ShapeError
from ..ops.anchors import ImageAnchors, head_centre, image_anchors, project_to_pixels
from ..ops.geometry import mesh_boundary_vertices
from ..ops.morphology import diffuse_fill, erode
from ..ops.poisson import poisson_blend
from ..render import rasterize
from ..render.warp import warp_triangles
from ..texture.learned import DEFAULT_TEXTURE_METHOD, TEXTURE_METHODS
from ._common import albedo_texture, check_rec, fit_tensors, numpy_dtype, render_textured, to_device, to_numpy
from .deocclude import occluder_free_texture

log = logging.getLogger(__name__)

__all__ = ["RotateResult", "ImageAnchors", "image_anchors", "head_centre", "rotate_face", "rotate_views", "frontalize",
           "mesh_boundary_vertices", "REFINE_MODES", "DEFAULT_REFINE", "view_report"]

_SEAM_PX = 4


@dataclass(frozen=True)
class RotateResult:
    """One re-posed image.

    All fields are torch tensors on the device of the reconstruction (``rec.image.device``); the
    floating ones are float64 for a float64 ``rec.image``, else float32.

    Attributes:
        image: ``(H, W, 3)`` float tensor in [0, 1], the whole edited photo.
        mask: ``(H, W)`` bool, pixels covered by the rendered (rotated) face.
        filled: ``(H, W)`` bool, pixels with no source in the photo, filled by diffusion.
        verts_cam: ``(V, 3)`` rotated face vertices, camera frame, metres.
        verts_model: ``(V, 3)`` the same in the original model frame (for export with the texture).
        pose_deg: ``(3,)`` the new head pose (yaw, pitch, roll) in degrees.
        delta_deg: ``(3,)`` the applied change of pose (yaw, pitch, roll) in degrees.
        refined: ``(H, W)`` bool, pixels the learned refiner changed (``refine="net"``), else None.
    """

    image: torch.Tensor
    mask: torch.Tensor
    filled: torch.Tensor
    verts_cam: torch.Tensor
    verts_model: torch.Tensor
    pose_deg: torch.Tensor
    delta_deg: torch.Tensor
    refined: torch.Tensor | None = None


#: ``refine=`` values of :func:`rotate_views`: recon3d's 3D-guided warp as it is, or refined by the network
REFINE_MODES = ("none", "net")
#: the default ``refine``: the refiner does not beat the warp on the mirror-pair benchmark yet
DEFAULT_REFINE = "none"


class _Prep:
    """Everything about one reconstruction that does not depend on the target pose (torch tensors on
    the reconstruction's device, see :func:`recon3d.edit._common.tensor_opts`; the photo also as the
    numpy array the warp reads)."""

    def __init__(self, rec, texture_is_albedo, texture="recomplete", texture_method="poisson", uv_generator=None):
        self.rec = rec
        ft = fit_tensors(rec)
        self.np_dtype = numpy_dtype(ft.opts)
        self.image = to_numpy(rec.image).astype(self.np_dtype)
        self.H, self.W = self.image.shape[:2]
        self.opts, self.K, self.R, self.t, self.light = ft.opts, ft.K, ft.R, ft.t, ft.light
        self.faces, self.verts_cam = ft.faces, ft.verts_cam  # (F,3), (V,3)
        if texture == "recomplete":
            ts = min(int(rec.texture.shape[0]), 512)
            self.albedo_tex = occluder_free_texture(rec, np.zeros(self.image.shape[:2], bool), ts,
                                                    method=texture_method, uv_generator=uv_generator)
        elif texture == "reconstruction":
            self.albedo_tex, _ = albedo_texture(rec, is_albedo=texture_is_albedo)
        else:
            raise ValueError(f"rotate_face(): texture must be 'recomplete' or 'reconstruction', got {texture!r}")
        self.centre = head_centre(rec.verts_model.detach().to(**self.opts), self.R, self.t)
        self.ypr0 = matrix_to_pose_angles(self.R[None].double())[0].to(self.opts["dtype"])
        self.boundary = mesh_boundary_vertices(rec.model.faces)
        self._anchor_setup()

    def project(self, X: torch.Tensor) -> np.ndarray:
        return project_to_pixels(self.K[0], X)

    def _anchor_setup(self) -> None:
        self.anchors = image_anchors(self.verts_cam, self.boundary, self.K[0], self.H, self.W)
        self.zmax = float(self.verts_cam[:, 2].max())

    def rotation(self, ypr_new: torch.Tensor) -> torch.Tensor:
        R_new = pose_angles_to_matrix(ypr_new[None].double())[0].to(self.opts["dtype"])
        return R_new @ self.R.T


def _rotate_one(prep: _Prep, ypr_new: torch.Tensor, *, blend: bool) -> RotateResult:
    D = prep.rotation(ypr_new)
    c = prep.centre
    v_new = (prep.verts_cam - c) @ D.T + c  # (V,3)
    H, W = prep.H, prep.W
    # -- background: move boundary vertices and anchors, warp the photo (numpy) -----------------
    a = prep.anchors
    z_b = to_numpy(v_new[prep.boundary][:, 2])
    dst, z_anchor = a.moved(prep.K[0], D, c, v_new[prep.boundary])
    z_far = prep.zmax + 1.0
    z_a = a.anchor_w * z_anchor + (1 - a.anchor_w) * z_far
    z = np.concatenate([z_b, z_a, np.full(len(a.border_xy), z_far + 1.0)], 0)[a.keep]
    wr = warp_triangles(prep.image, a.src_all, dst, a.tris, depth=z)
    # -- the rotated face, relit -----------------------------------------------------------------
    solid = to_numpy(rasterize(v_new[None], prep.faces, prep.K, (H, W)).tri_id[0] >= 0)
    hole = (wr.stretched | ~wr.covered) & ~erode(solid, 1)
    bg = diffuse_fill(wr.image, hole) if hole.any() else wr.image
    # the renderer composites the antialiased silhouette over the warped background itself
    out = render_textured(prep.rec, v_new[None], prep.albedo_tex, (H, W), light=prep.light, K=prep.K, background=bg)
    comp = to_numpy(out.image[0].clamp(0, 1)).astype(prep.np_dtype)
    face = comp
    if blend and solid.any():
        band = solid & ~erode(solid, _SEAM_PX)
        # Dirichlet boundary: the background outside, the rendered face inside the band
        src = np.where(solid[..., None], face, comp)
        res = np.asarray(poisson_blend(comp.astype(np.float64), src.astype(np.float64), band))
        comp = np.where(band[..., None], np.clip(res, 0, 1), comp).astype(prep.np_dtype)
    verts_model = (v_new - prep.t) @ prep.R  # R^T (v - t), row-vector form
    delta = torch.rad2deg(ypr_new - prep.ypr0)
    return RotateResult(
        image=to_device(np.clip(comp, 0, 1).astype(prep.np_dtype), prep.opts), mask=to_device(solid, prep.opts),
        filled=to_device(hole, prep.opts), verts_cam=v_new, verts_model=verts_model,
        pose_deg=torch.rad2deg(ypr_new), delta_deg=delta,
    )


def _target(prep: _Prep, yaw_deg: float, pitch_deg: float, roll_deg: float, absolute: bool) -> torch.Tensor:
    for name, v in (("yaw_deg", yaw_deg), ("pitch_deg", pitch_deg), ("roll_deg", roll_deg)):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"rotate_face(): {name} must be a finite number of degrees, got {v!r}")
        if abs(v) > 90:
            raise ValueError(f"rotate_face(): |{name}| must be <= 90 degrees, got {v}")
    d = torch.tensor([math.radians(yaw_deg), math.radians(pitch_deg), math.radians(roll_deg)],
                     dtype=prep.ypr0.dtype, device=prep.ypr0.device)
    if absolute:
        return torch.stack([d[0], d[1], prep.ypr0[2] + d[2]])
    return prep.ypr0 + d


def rotate_views(rec, poses, *, absolute: bool = False, blend: bool = True, texture: str = "recomplete",
                 texture_is_albedo: bool | None = None, refine: str = DEFAULT_REFINE,
                 refiner=None, texture_method: str = DEFAULT_TEXTURE_METHOD, uv_generator=None) -> list[RotateResult]:
    """Several re-posed images of one reconstruction (shares the pose-independent work).

    Args:
        rec: a :class:`recon3d.reconstruct.Reconstruction`.
        poses: iterable of ``(yaw_deg, pitch_deg)`` or ``(yaw_deg, pitch_deg, roll_deg)``.
        absolute: the angles are the target head pose (roll: change of roll) rather than a change.
        blend: Poisson-blend the face silhouette into the background.
        texture: ``"recomplete"`` (default): unwrap the photo again, de-light it by the fitted
            shading and complete it by mirroring and Poisson blending into the fitted albedo keeping
            the visible texels exactly (``complete_texture(keep_visible=True)``), so that a zero
            rotation reproduces the photo; ``"reconstruction"``: use ``rec.texture`` as it is
            (de-lit here unless ``texture_is_albedo``).
        texture_is_albedo: with ``texture="reconstruction"``, whether ``rec.texture`` is already
            de-lit (None: detect, see :func:`recon3d.edit._common.albedo_texture`).
        refine: ``"none"``: the 3D-guided warp as it is; ``"net"``: refined by the learned rotation refiner
            (:mod:`recon3d.nn.rotate_refine`, thesis ch. 3) in a 128² crop aligned on the rotated face, its
            correction pasted back under a feathered mask (:mod:`recon3d.edit._learned_rotate`).
        refiner: a :class:`~recon3d.nn.rotate_refine.RotationRefiner`, or a path to its weights (default: the
            shipped ones), for ``refine="net"``; it runs on the reconstruction's device.
        texture_method: how ``texture="recomplete"`` completes the texels the photo does not show (the far
            side of the head): ``"poisson"`` (mirror + Poisson) or ``"net"`` (the learned UV generator,
            :mod:`recon3d.texture.learned`).
        uv_generator: a :class:`~recon3d.nn.uv_generator.UVGenerator` or a path to its weights (default: the
            shipped ones), for ``texture_method="net"``.

    Returns:
        One :class:`RotateResult` per pose.

    Raises:
        ShapeError: ``poses`` is not ``(N, 2)`` / ``(N, 3)`` (or a pose not 2 or 3 angles), or ``rec``
            has wrong shapes.
        ValueError: non-finite angles or angles beyond 90 degrees; an unknown ``texture`` or ``refine``.
        TypeError: ``rec`` is not a Reconstruction.
        AssetError: ``refine="net"`` and the refiner's weights are missing or not a refiner's.
    """
    check_rec("rotate_views()", rec)
    if refine not in REFINE_MODES:
        raise ValueError(f"rotate_views(): refine must be one of {REFINE_MODES}, got {refine!r}")
    poses = _check_poses("rotate_views()", poses)
    net = _refiner(refiner, rec.image.device) if refine == "net" else None
    if texture_method not in TEXTURE_METHODS:
        raise ValueError(f"rotate_views(): texture_method must be one of {TEXTURE_METHODS}, got {texture_method!r}")
    gen = _uv_generator(uv_generator, rec.image.device) if texture_method == "net" and texture == "recomplete" else None
    prep = _Prep(rec, texture_is_albedo, texture, texture_method, gen)
    out = [_rotate_one(prep, _target(prep, *p, absolute), blend=blend) for p in poses]
    return out if net is None else [_refined(rec, r, net, prep) for r in out]


def _uv_generator(uv_generator, device):
    from ..nn.uv_generator import UVGenerator, load_uv_generator

    if isinstance(uv_generator, UVGenerator):
        return uv_generator.eval()
    return load_uv_generator(uv_generator, device=device)


def _refiner(refiner, device):
    from ..nn.rotate_refine import RotationRefiner, load_rotation_refiner

    if isinstance(refiner, RotationRefiner):
        return refiner.eval()
    return load_rotation_refiner(refiner, device=device)


def _refined(rec, r: RotateResult, net, prep: _Prep) -> RotateResult:
    from dataclasses import replace

    from ._learned_rotate import refine_rotation

    img, changed = refine_rotation(net, rec, r)
    return replace(r, image=to_device(img.astype(prep.np_dtype), prep.opts), refined=to_device(changed, prep.opts))


def view_report(rec, result: RotateResult, *, identity_net=None, regressor=None) -> dict:
    """How a rotated view reads to recon3d's own networks (recorded for every output of ``pipelines.rotate``).

    Returns:
        ``{"identity_cos": cosine between our identity network's descriptors (:mod:`recon3d.nn.identity`) of the
        photo and of the view, each aligned on the face template by its model landmarks, "pose_measured_deg":
        [yaw, pitch, roll] our landmark regressor measures on the view (its crop from the rotated landmarks)}``.
    """
    from ..nn.identity import embed_aligned
    from ..nn.landmarks import load_regressor
    from ..ops.crop import crop_box_from_landmarks
    from ._learned_fill import template_matrix
    from ._learned_rotate import model_landmarks_px, to_frame

    src_px, _ = model_landmarks_px(rec, fit_tensors(rec).verts_cam)
    tgt_px, _ = model_landmarks_px(rec, result.verts_cam)
    photo, view = (to_numpy(x).astype(np.float32) for x in (rec.image, result.image))
    faces = np.stack([to_frame(photo, template_matrix(src_px, 128), 128), to_frame(view, template_matrix(tgt_px, 128), 128)])
    e = embed_aligned(torch.from_numpy(faces) * 2 - 1, identity_net)
    cos = float(e[0] @ e[1] / max(float(np.linalg.norm(e[0]) * np.linalg.norm(e[1])), 1e-12))
    pose = (regressor or load_regressor())(view, crop_box_from_landmarks(tgt_px)).pose_deg
    return {"identity_cos": round(cos, 4), "pose_measured_deg": [round(float(x), 2) for x in pose]}


def _check_poses(where: str, poses) -> list[tuple[float, float, float]]:
    """``poses`` (an ``(N, 2)`` / ``(N, 3)`` array or tensor, or an iterable of 2- or 3-sequences) as
    ``(yaw, pitch, roll)`` float triples (roll 0 when missing)."""
    if hasattr(poses, "shape"):
        dims = check_shapes(where, poses=(poses, "N P"))
        if dims["P"] not in (2, 3):
            raise ShapeError(f"{where}: poses must be (N, 2) or (N, 3) (yaw, pitch[, roll]) degrees, "
                             f"got {tuple(poses.shape)}")
        poses = to_numpy(poses).tolist()
    out = []
    for i, p in enumerate(poses):
        a = to_numpy(p).astype(np.float64)
        if a.ndim != 1 or len(a) not in (2, 3):
            raise ShapeError(f"{where}: poses[{i}] must be (2,) or (3,) (yaw, pitch[, roll]) degrees, "
                             f"got {tuple(a.shape)}")
        p = tuple(float(x) for x in a)
        out.append((p[0], p[1], p[2] if len(p) == 3 else 0.0))
    return out


def rotate_face(rec, *, yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0,
                absolute: bool = False, blend: bool = True, texture: str = "recomplete",
                texture_is_albedo: bool | None = None, refine: str = DEFAULT_REFINE, refiner=None,
                texture_method: str = DEFAULT_TEXTURE_METHOD, uv_generator=None) -> RotateResult:
    """Re-pose the face of a reconstruction inside its photo (the whole image is returned).

    Args:
        rec: a :class:`recon3d.reconstruct.Reconstruction`.
        yaw_deg, pitch_deg, roll_deg: change of head pose in degrees (``absolute=False``) or the
            target yaw and pitch (``absolute=True``; roll is then still a change). Signs follow
            :mod:`recon3d.conventions` (the pose the fit reports in ``rec.pose_deg``).
        absolute: see above.
        blend: Poisson-blend a 4-pixel band along the face silhouette.
        texture, texture_is_albedo, refine, refiner, texture_method, uv_generator: see :func:`rotate_views`.

    Returns:
        :class:`RotateResult`.

    Raises:
        ValueError: non-finite angles or angles beyond 90 degrees.
        TypeError: ``rec`` is not a Reconstruction.
    """
    check_rec("rotate_face()", rec)
    return rotate_views(rec, [(yaw_deg, pitch_deg, roll_deg)], absolute=absolute, blend=blend, texture=texture,
                        texture_is_albedo=texture_is_albedo, refine=refine, refiner=refiner,
                        texture_method=texture_method, uv_generator=uv_generator)[0]


def frontalize(rec, *, blend: bool = True, texture: str = "recomplete",
               texture_is_albedo: bool | None = None, refine: str = DEFAULT_REFINE, refiner=None,
               texture_method: str = DEFAULT_TEXTURE_METHOD, uv_generator=None) -> RotateResult:
    """Rotate the head to yaw = pitch = 0 (roll kept): :func:`rotate_face` with ``absolute=True``."""
    check_rec("frontalize()", rec)
    return rotate_face(rec, yaw_deg=0.0, pitch_deg=0.0, absolute=True, blend=blend, texture=texture,
                       texture_is_albedo=texture_is_albedo, refine=refine, refiner=refiner,
                       texture_method=texture_method, uv_generator=uv_generator)
