"""Helpers shared by the render-and-refine edits: face rendering with the completed texture relit by
the fitted SH, de-lighting of the texture, a diffusion fill and mask morphology.

All functions take and return single (unbatched) images ``(H, W, C)`` unless said otherwise.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..conventions import opencv_to_opengl_cam
from ..errors import ShapeError

log = logging.getLogger(__name__)

__all__: list[str] = []


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def check_rec(where: str, rec) -> None:
    """Raise a clear error when ``rec`` does not look like a :class:`recon3d.reconstruct.Reconstruction`."""
    for name in ("image", "fit", "model", "verts_model", "texture"):
        if not hasattr(rec, name):
            raise TypeError(f"{where}: rec must be a recon3d Reconstruction (missing .{name}), got {type(rec).__name__}")
    img = rec.image
    if img.dim() != 3 or img.shape[-1] != 3:
        raise ShapeError(f"{where}: rec.image must be (H, W, 3), got {tuple(img.shape)}")
    if rec.texture.dim() != 3 or rec.texture.shape[-1] != 3:
        raise ShapeError(f"{where}: rec.texture must be (Ht, Wt, 3), got {tuple(rec.texture.shape)}")


def verts_cam_of(rec) -> torch.Tensor:
    """``(1, V, 3)`` fitted vertices in the camera frame (float32, CPU)."""
    cam = rec.fit.camera
    v = rec.verts_model[None].to(cam.R.dtype).to(cam.R.device)
    return cam.to_cam(v).detach().float().cpu()


def vertex_shading(rec, verts_cam: torch.Tensor) -> torch.Tensor:
    """``(1, V, 3)`` SH irradiance of each vertex under the fitted light (the renderer's convention:
    normals in the OpenGL camera frame)."""
    from ..mesh.geometry import vertex_normals
    from ..render import sh_shading

    n = vertex_normals(verts_cam, rec.model.faces.cpu())
    light = rec.fit.params.light.detach().float().cpu()
    return sh_shading(opencv_to_opengl_cam(n), light)


def render_textured(rec, verts_cam: torch.Tensor, texture: torch.Tensor, image_size: tuple[int, int], *,
                    light: torch.Tensor | None = None, K: torch.Tensor | None = None, background=None):
    """Render the face mesh with ``texture`` (``(Ht, Wt, 3)``), optionally lit with SH ``light``.

    ``background`` (``(H, W, 3)``) is composited under the antialiased silhouette by the renderer.

    Returns:
        :class:`recon3d.render.RenderOutput` (batch of one).
    """
    from ..render import render_mesh

    m = rec.model
    K = rec.fit.camera.K.detach().float().cpu() if K is None else K
    return render_mesh(verts_cam, m.faces.cpu(), K, image_size, texture_map=(m.uv.cpu(), m.uv_faces.cpu(),
                       texture[None].float().cpu()), light=light, antialias=True,
                       background=None if background is None else torch.as_tensor(background).float()[None])


def albedo_texture(rec, texture: torch.Tensor | None = None, *, is_albedo: bool | None = None):
    """The completed texture with the fitted shading divided out (an albedo estimate), so it can
    be relit by the fitted SH at any pose.

    ``rec.texture`` holds image colours (shading baked in) unless the reconstruction was run with
    ``delight=True``. With ``is_albedo=None`` this is decided by rendering both hypotheses at the
    fitted pose and keeping the one closer to the photo inside the face.

    Returns:
        ``(albedo_tex (Ht, Wt, 3), was_albedo: bool)``.
    """
    from ..texture import bake_vertex_attr_to_uv, remove_shading, uv_raster

    tex = (rec.texture if texture is None else texture).detach().float().cpu()
    verts_cam = verts_cam_of(rec)
    light = rec.fit.params.light.detach().float().cpu()
    H, W = rec.image.shape[:2]
    if is_albedo is None:
        lit = render_textured(rec, verts_cam, tex, (H, W), light=light)
        unlit = render_textured(rec, verts_cam, tex, (H, W), light=None)
        m = (lit.mask[0, ..., 0] > 0.99)
        if int(m.sum()) < 20:
            is_albedo = False
        else:
            img = rec.image.float().cpu()
            e_lit = (lit.image[0] - img).abs()[m].mean().item()
            e_unlit = (unlit.image[0] - img).abs()[m].mean().item()
            is_albedo = e_lit < e_unlit
            log.debug("albedo_texture(): |lit - img| %.4f, |unlit - img| %.4f -> albedo=%s", e_lit, e_unlit, is_albedo)
    if is_albedo:
        return tex, True
    Ht, Wt = tex.shape[:2]
    uvr = uv_raster(rec.model.to("cpu"), resolution=(Ht, Wt))
    shading_uv = bake_vertex_attr_to_uv(vertex_shading(rec, verts_cam), rec.model.faces.cpu(), uvr, fill=1.0)
    return remove_shading(tex[None], shading_uv, max_value=1.5)[0], False


def diffuse_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` (``(H, W)`` bool) of ``image`` (``(H, W, C)``) with the smooth (harmonic) membrane
    interpolation of its border values; pixels outside the hole are returned unchanged."""
    from ..texture import poisson_blend

    if not hole.any():
        return image.copy()
    out = poisson_blend(image.astype(np.float64), np.zeros_like(image, dtype=np.float64), hole)
    out = np.asarray(out)
    # parts of the hole that touch no known pixel (the whole image) keep the image mean
    res = np.where(hole[..., None], out, image)
    return res.astype(image.dtype)


def disk(r: int) -> np.ndarray:
    """A ``(2r+1, 2r+1)`` bool disk structuring element."""
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= r * r + 0.5


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask, disk(r), border_value=0) if r > 0 else mask.copy()


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, disk(r)) if r > 0 else mask.copy()


def poisson_paste(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seamless cloning of ``source`` into ``target`` over ``mask``; every pixel outside ``mask`` is
    exactly ``target`` (enforced, not just solved for)."""
    from ..texture import poisson_blend

    if not mask.any():
        return target.copy()
    out = np.asarray(poisson_blend(target.astype(np.float64), source.astype(np.float64), mask))
    out = np.clip(out, 0.0, 1.0).astype(target.dtype)
    return np.where(mask[..., None], out, target)
