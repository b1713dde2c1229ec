"""The one texture-from-a-fit sequence: unwrap the photo -> bake the fitted shading -> de-light ->
complete (mirror + Poisson blend into the fitted 3DMM albedo).

:func:`recon3d.reconstruct.reconstruct`, the de-occlusion fill (:mod:`recon3d.edit.deocclude`),
the albedo estimate of the edits (:func:`recon3d.edit._common.albedo_texture`) and the synthetic
reconstruction (:mod:`recon3d.edit.synthetic`) all go through these functions.

Shading follows the renderer's convention: SH irradiance of the vertex normals in the OpenGL camera
frame (:func:`recon3d.conventions.opencv_to_opengl_cam`), see :func:`fit_vertex_shading`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._checks import check_shapes
from ..conventions import opencv_to_opengl_cam
from ..ops.geometry import vertex_normals
from ..render import sh_shading
from .complete import complete_texture
from .learned import TEXTURE_METHODS, net_correction
from .unwrap import UVRaster, bake_vertex_attr_to_uv, remove_shading, unwrap_texture

__all__ = ["FitTexture", "fit_vertex_shading", "bake_fit_shading", "texture_from_fit"]


@dataclass(frozen=True)
class FitTexture:
    """Output of :func:`texture_from_fit` (all ``(B, Ht, Wt, ·)``).

    Attributes:
        texture: the completed texture (clamped to [0, 1] unless ``clamp=False``).
        texture_visible: the unwrapped photo colours (de-lit with ``delight``), before completion;
            unmasked: multiply by ``visible`` for the visible-only texture.
        visible: bool, texels taken from the photo (unwrap visibility minus ``exclude``).
        confidence: cosine of the view angle on the unwrap's visible texels, 0 elsewhere.
        albedo_uv: the fitted 3DMM albedo baked into UV.
        shading_uv: the fitted SH shading baked into UV (1 outside the layout).
    """

    texture: torch.Tensor
    texture_visible: torch.Tensor
    visible: torch.Tensor
    confidence: torch.Tensor
    albedo_uv: torch.Tensor
    shading_uv: torch.Tensor


def fit_vertex_shading(verts_cam: torch.Tensor, faces: torch.Tensor, light: torch.Tensor, *,
                       normals: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, V, 3)`` SH irradiance of each vertex under the fitted ``light`` ``(B, 9, 3)``.

    Args:
        verts_cam: ``(B, V, 3)`` OpenCV camera frame.
        faces: ``(F, 3)`` int64.
        light: ``(B, 9, 3)`` SH coefficients (renderer convention: OpenGL camera frame).
        normals: ``(B, V, 3)`` camera-frame vertex normals (default: those of ``verts_cam``).
    """
    n = vertex_normals(verts_cam, faces) if normals is None else normals
    return sh_shading(opencv_to_opengl_cam(n), light)


def bake_fit_shading(verts_cam: torch.Tensor, faces: torch.Tensor, light: torch.Tensor, uvr: UVRaster, *,
                     normals: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`fit_vertex_shading` baked into UV, ``(B, Ht, Wt, 3)``; 1 (neutral) outside the layout."""
    return bake_vertex_attr_to_uv(fit_vertex_shading(verts_cam, faces, light, normals=normals), faces, uvr, fill=1.0)


def texture_from_fit(
    image: torch.Tensor,
    verts_cam: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    uvr: UVRaster,
    *,
    albedo_v: torch.Tensor,
    light: torch.Tensor,
    exclude: torch.Tensor | None = None,
    delight: bool = False,
    max_value: float = 1.0,
    mirror: bool = True,
    clamp: bool = True,
    method: str = "poisson",
    uv_generator=None,
) -> FitTexture:
    """The UV texture of a fitted face: unwrap ``image``, bake the fitted shading, de-light, complete.

    Without ``delight`` the visible photo colours (shading baked in) are completed into the fitted
    albedo times the fitted shading; with ``delight`` the photo colours are divided by the shading
    (:func:`~recon3d.texture.remove_shading`, clamped to ``[0, max_value]``) and completed into the
    fitted albedo (an albedo-like texture).

    Args:
        image: ``(B, H, W, 3)`` float RGB in [0, 1].
        verts_cam: ``(B, V, 3)`` fitted vertices, OpenCV camera frame, metres.
        faces: ``(F, 3)`` int64 matching the layout of ``uvr``.
        K: ``(B, 3, 3)`` intrinsics in pixels.
        uvr: from :func:`~recon3d.texture.uv_raster` (fixes the texture resolution).
        albedo_v: ``(B, V, 3)`` (or ``(1, V, 3)``) per-vertex fitted albedo.
        light: ``(B, 9, 3)`` fitted SH light.
        exclude: optional ``(H, W)`` bool image mask; texels seen through it are not taken from the
            photo (an occluder).
        delight: divide the fitted shading out of the photo colours.
        max_value: upper clamp of the de-lit colours.
        mirror, clamp: passed to :func:`~recon3d.texture.complete_texture` (``keep_visible=True``).
        method: ``"poisson"`` (mirror + Poisson blending) or ``"net"``: the learned UV generator corrects that
            completion on the unseen texels (:func:`recon3d.texture.learned.net_correction`; it works on photo
            colours, so with ``delight`` its correction is divided by the fitted shading).
        uv_generator: the generator of ``method="net"`` (default: the shipped one).

    Returns:
        :class:`FitTexture`.

    Raises:
        ShapeError: on wrong shapes.
        ValueError: an unknown ``method``.
    """
    if method not in TEXTURE_METHODS:
        raise ValueError(f"texture_from_fit(): method must be one of {', '.join(TEXTURE_METHODS)}, got {method!r}")
    d = check_shapes("texture_from_fit()", image=(image, "B H W 3"), verts_cam=(verts_cam, "B V 3"),
                     faces=(faces, "F 3"), K=(K, "B 3 3"), light=(light, "B 9 3"), exclude=(exclude, "H W"))
    normals = vertex_normals(verts_cam, faces)
    unw = unwrap_texture(image, verts_cam, faces, K, uvr, normals=normals)
    visible = unw.visible
    if exclude is not None:
        occ_img = exclude.to(image.dtype)[None, ..., None].expand(d["B"], *exclude.shape, 3).contiguous()
        occ_uv = unwrap_texture(occ_img, verts_cam, faces, K, uvr, normals=normals).texture[..., 0]
        visible = visible & (occ_uv < 0.01)
    shading_v = fit_vertex_shading(verts_cam, faces, light, normals=normals)
    baked = bake_vertex_attr_to_uv(torch.cat([albedo_v.expand_as(shading_v), shading_v], -1), faces, uvr)
    albedo_uv, shading_uv = baked[..., :3], baked[..., 3:]
    shading_uv = torch.where(uvr.mask.to(shading_uv.device)[None, ..., None], shading_uv, 1.0)
    tex_vis = unw.texture
    if delight:
        tex_vis = remove_shading(tex_vis, shading_uv, max_value=max_value)
        target = albedo_uv
    else:
        target = (albedo_uv * shading_uv).clamp(0, 1)
    comp = complete_texture(tex_vis, visible, target, uvr, mirror=mirror, keep_visible=True, clamp=clamp)
    texture = comp.texture
    if method == "net":  # the generator works on photo colours; its correction is de-lit with the texture
        shaded = (albedo_uv * shading_uv).clamp(0, 1)
        base = comp.texture if not delight else complete_texture(
            unw.texture, visible, shaded, uvr, mirror=mirror, keep_visible=True).texture
        corr = net_correction(unw.texture, visible, shaded, base.clamp(0, 1), uvr, uv_generator).to(texture.dtype)
        if delight:
            corr = corr / shading_uv.clamp_min(0.05)
        hi = max_value if delight else 1.0
        hole = (uvr.mask.to(visible.device)[None] & ~visible)[..., None]
        texture = torch.where(hole, (texture + corr).clamp(0, hi) if clamp else texture + corr, texture)
    return FitTexture(texture=texture, texture_visible=tex_vis, visible=visible, confidence=unw.confidence,
                      albedo_uv=albedo_uv, shading_uv=shading_uv)
