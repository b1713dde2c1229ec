"""Helpers shared by the render-and-refine edits: face rendering with the completed texture relit by
the fitted SH and de-lighting of the texture (mask morphology, the diffusion fill and Poisson pasting
are generic ops: :mod:`recon3d.ops.morphology`, :mod:`recon3d.ops.poisson`).

All functions take and return single (unbatched) images ``(H, W, C)`` unless said otherwise.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import ShapeError
from ..render import render_mesh
from ..structures.reconstruction import Reconstruction
from ..texture import remove_shading, uv_raster
from ..texture.from_fit import bake_fit_shading, fit_vertex_shading

log = logging.getLogger(__name__)

__all__: list[str] = []


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def check_rec(where: str, rec) -> None:
    """Raise a clear error when ``rec`` is not a :class:`recon3d.structures.Reconstruction` of the expected shapes."""
    if not isinstance(rec, Reconstruction):
        raise TypeError(f"{where}: rec must be a recon3d Reconstruction, got {type(rec).__name__}")
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
    return fit_vertex_shading(verts_cam, rec.model.faces.cpu(), rec.fit.params.light.detach().float().cpu())


def render_textured(rec, verts_cam: torch.Tensor, texture: torch.Tensor, image_size: tuple[int, int], *,
                    light: torch.Tensor | None = None, K: torch.Tensor | None = None, background=None):
    """Render the face mesh with ``texture`` (``(Ht, Wt, 3)``), optionally lit with SH ``light``.

    ``background`` (``(H, W, 3)``) is composited under the antialiased silhouette by the renderer.

    Returns:
        :class:`recon3d.render.RenderOutput` (batch of one).
    """
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
    shading_uv = bake_fit_shading(verts_cam, rec.model.faces.cpu(), light, uvr)
    return remove_shading(tex[None], shading_uv, max_value=1.5)[0], False
