"""Helpers shared by the render-and-refine edits: face rendering with the completed texture relit by
the fitted SH and de-lighting of the texture (mask morphology, the diffusion fill and Poisson pasting
are generic ops: :mod:`recon3d.ops.morphology`, :mod:`recon3d.ops.poisson`).

Device and dtype: the torch maths of the edits (camera transforms, rendering, shading, texture
baking) runs on the device of the reconstruction (``rec.image.device``) in its floating dtype
(float64 when ``rec.image`` is float64, else float32 as from :func:`recon3d.reconstruct.reconstruct`);
see :func:`tensor_opts`. Arrays cross to numpy only at the numpy-only ops (Poisson, morphology,
warp, anchors, dlib) through :func:`to_numpy`, and come back with :func:`to_device`.

All functions take and return single (unbatched) images ``(H, W, C)`` unless said otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._checks import check_shapes
from ..render import render_mesh
from ..structures.reconstruction import Reconstruction
from ..texture import remove_shading, uv_raster
from ..texture.from_fit import bake_fit_shading

log = logging.getLogger(__name__)

__all__: list[str] = []


def to_numpy(x: Any) -> np.ndarray:
    """The one tensor -> numpy conversion of :mod:`recon3d.edit` (detached, copied to host memory);
    numpy input passes through ``np.asarray``."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def tensor_opts(rec) -> dict[str, Any]:
    """``device=`` and ``dtype=`` of the edits' torch maths for ``rec``: the device of ``rec.image``;
    float64 when ``rec.image`` is float64, else float32."""
    img = rec.image
    return {"device": img.device, "dtype": torch.float64 if img.dtype == torch.float64 else torch.float32}


def numpy_dtype(opts: dict[str, Any]) -> type:
    """The numpy dtype matching ``opts["dtype"]`` (:func:`tensor_opts`): float64 or float32."""
    return np.float64 if opts["dtype"] == torch.float64 else np.float32


def to_device(a: np.ndarray, opts: dict[str, Any], *, keep_dtype: bool = False) -> torch.Tensor:
    """A numpy result back on the device of ``opts`` (:func:`tensor_opts`); floating arrays take its
    dtype unless ``keep_dtype``, bool and integer arrays keep theirs."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    if keep_dtype or not t.is_floating_point():
        return t.to(opts["device"])
    return t.to(**opts)


def check_rec(where: str, rec) -> None:
    """Raise a clear error when ``rec`` is not a :class:`recon3d.structures.Reconstruction` of the expected shapes.

    Raises:
        TypeError: ``rec`` is not a Reconstruction.
        ShapeError: ``rec.image`` is not ``(H, W, 3)``, ``rec.texture`` not ``(Ht, Wt, 3)``,
            ``rec.verts_model`` not ``(V, 3)`` or the fitted camera / light not batched ``B = 1``.
    """
    if not isinstance(rec, Reconstruction):
        raise TypeError(f"{where}: rec must be a recon3d Reconstruction, got {type(rec).__name__}")
    check_shapes(where, **{"rec.image": (rec.image, "H W 3"), "rec.texture": (rec.texture, "Ht Wt 3"),
                           "rec.verts_model": (rec.verts_model, "V 3"), "rec.model.mean": (rec.model.mean, "V 3"),
                           "rec.fit.camera.K": (rec.fit.camera.K, "1 3 3"),
                           "rec.fit.params.light": (rec.fit.params.light, "1 9 3")})


def fit_camera(rec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(K (1, 3, 3), R (1, 3, 3), t (1, 3))`` of the fitted camera, detached, on :func:`tensor_opts`."""
    cam, o = rec.fit.camera, tensor_opts(rec)
    return cam.K.detach().to(**o), cam.R.detach().to(**o), cam.t.detach().to(**o)


def fit_light(rec) -> torch.Tensor:
    """``(1, 9, 3)`` fitted SH light, detached, on :func:`tensor_opts`."""
    return rec.fit.params.light.detach().to(**tensor_opts(rec))


def model_of(rec):
    """``rec.model`` on the device (and floating dtype) of :func:`tensor_opts`."""
    return rec.model.to(**tensor_opts(rec))


def verts_cam_of(rec) -> torch.Tensor:
    """``(1, V, 3)`` fitted vertices in the camera frame, detached, on :func:`tensor_opts`."""
    cam = rec.fit.camera
    v = rec.verts_model[None].to(cam.R.dtype).to(cam.R.device)
    return cam.to_cam(v).detach().to(**tensor_opts(rec))


@dataclass(frozen=True)
class FitTensors:
    """The fitted quantities the edits read, detached, on :func:`tensor_opts` of the reconstruction.

    Attributes:
        opts: ``device=`` / ``dtype=`` (:func:`tensor_opts`).
        K: ``(1, 3, 3)`` intrinsics; R: ``(3, 3)`` rotation and t: ``(3,)`` translation of the fitted camera.
        light: ``(1, 9, 3)`` fitted SH light.
        faces: ``(F, 3)`` int64 mesh triangles.
        verts_cam: ``(V, 3)`` fitted vertices, camera frame.
    """

    opts: dict[str, Any]
    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    light: torch.Tensor
    faces: torch.Tensor
    verts_cam: torch.Tensor


def fit_tensors(rec) -> FitTensors:
    """:class:`FitTensors` of ``rec``."""
    K, R, t = fit_camera(rec)
    return FitTensors(opts=tensor_opts(rec), K=K, R=R[0], t=t[0], light=fit_light(rec), faces=model_of(rec).faces,
                      verts_cam=verts_cam_of(rec)[0])


def render_textured(rec, verts_cam: torch.Tensor, texture: torch.Tensor, image_size: tuple[int, int], *,
                    light: torch.Tensor | None = None, K: torch.Tensor | None = None, background=None):
    """Render the face mesh with ``texture`` (``(Ht, Wt, 3)``), optionally lit with SH ``light``.

    ``background`` (``(H, W, 3)``, numpy or torch) is composited under the antialiased silhouette by
    the renderer. Everything is moved to :func:`tensor_opts` of ``rec``.

    Returns:
        :class:`recon3d.render.RenderOutput` (batch of one).
    """
    o = tensor_opts(rec)
    m = model_of(rec)
    K = fit_camera(rec)[0] if K is None else K.to(**o)
    bg = None if background is None else torch.as_tensor(background).to(**o)[None]
    return render_mesh(verts_cam.to(**o), m.faces, K, image_size,
                       texture_map=(m.uv, m.uv_faces, texture[None].to(**o)),
                       light=None if light is None else light.to(**o), antialias=True, background=bg)


def albedo_texture(rec, texture: torch.Tensor | None = None, *, is_albedo: bool | None = None):
    """The completed texture with the fitted shading divided out (an albedo estimate), so it can
    be relit by the fitted SH at any pose.

    ``rec.texture`` holds image colours (shading baked in) unless the reconstruction was run with
    ``delight=True``. With ``is_albedo=None`` this is decided by rendering both hypotheses at the
    fitted pose and keeping the one closer to the photo inside the face.

    Returns:
        ``(albedo_tex (Ht, Wt, 3) on the device of rec, was_albedo: bool)``.
    """
    o = tensor_opts(rec)
    tex = (rec.texture if texture is None else texture).detach().to(**o)
    verts_cam = verts_cam_of(rec)
    light = fit_light(rec)
    H, W = rec.image.shape[:2]
    if is_albedo is None:
        lit = render_textured(rec, verts_cam, tex, (H, W), light=light)
        unlit = render_textured(rec, verts_cam, tex, (H, W), light=None)
        m = (lit.mask[0, ..., 0] > 0.99)
        if int(m.sum()) < 20:
            is_albedo = False
        else:
            img = rec.image.to(**o)
            e_lit = (lit.image[0] - img).abs()[m].mean().item()
            e_unlit = (unlit.image[0] - img).abs()[m].mean().item()
            is_albedo = e_lit < e_unlit
            log.debug("albedo_texture(): |lit - img| %.4f, |unlit - img| %.4f -> albedo=%s", e_lit, e_unlit, is_albedo)
    if is_albedo:
        return tex, True
    Ht, Wt = tex.shape[:2]
    m = model_of(rec)
    uvr = uv_raster(m, resolution=(Ht, Wt))
    shading_uv = bake_fit_shading(verts_cam, m.faces, light, uvr)
    return remove_shading(tex[None], shading_uv, max_value=1.5)[0], False
