"""``render_mesh``: rasterise, interpolate, texture, SH-shade, composite and antialias."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch
from torch import nn

from .._checks import check_float, check_shapes
from ..conventions import opencv_to_opengl_cam
from ..errors import ShapeError
from ..ops.geometry import vertex_normals
from .antialiasing import EdgeTopology, edge_topology
from .antialiasing import antialias as _antialias
from .interpolation import interpolate
from .raster import rasterize
from .shading import sh_shading
from .texturing import texture

__all__ = ["RenderOutput", "render_mesh", "MeshRenderer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderOutput:
    """Result of :func:`render_mesh`.

    Attributes:
        image: ``(B, H, W, 3)`` RGB, top row first, composited over the background.
        mask: ``(B, H, W, 1)`` float coverage, antialiased at silhouettes when ``antialias``.
        depth: ``(B, H, W)`` camera z in metres, 0 in the background.
        tri_id: ``(B, H, W)`` int64 visible face, -1 in the background.
    """

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    tri_id: torch.Tensor

    def to(self, device: torch.device | str) -> "RenderOutput":
        return replace(self, image=self.image.to(device), mask=self.mask.to(device), depth=self.depth.to(device),
                       tri_id=self.tri_id.to(device))

    def detach(self) -> "RenderOutput":
        return replace(self, image=self.image.detach(), mask=self.mask.detach(), depth=self.depth.detach())


def _background(background: torch.Tensor | float | None, B: int, H: int, W: int, ref: torch.Tensor) -> torch.Tensor:
    if background is None:
        return ref.new_zeros(1, 1, 1, 3)
    bg = torch.as_tensor(background, dtype=ref.dtype, device=ref.device)
    if bg.dim() == 0:
        return bg.expand(1, 1, 1, 3)
    if bg.dim() == 1 and bg.shape[0] == 3:
        return bg.view(1, 1, 1, 3)
    if bg.dim() == 4 and bg.shape[1:] == (H, W, 3) and bg.shape[0] in (1, B):
        return bg
    raise ShapeError(f"render_mesh(): background must be a scalar, (3,) or (B, {H}, {W}, 3), got {tuple(bg.shape)}")


def render_mesh(verts_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, image_size: tuple[int, int], *,
                vert_colors: torch.Tensor | None = None,
                texture_map: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                light: torch.Tensor | None = None, normals: torch.Tensor | None = None,
                background: torch.Tensor | float | None = None, antialias: bool = True,
                cull_backfaces: bool = True, tex_filter: str = "bilinear", backend: str = "torch",
                topology: EdgeTopology | None = None) -> RenderOutput:
    """Render a batch of meshes with per-vertex colours or a UV texture and optional SH lighting.

    Args:
        verts_cam: ``(B, V, 3)`` OpenCV camera-frame vertices, metres.
        faces: ``(F, 3)`` int64, CCW seen from outside, shared across the batch.
        K: ``(B, 3, 3)`` intrinsics in pixels.
        image_size: ``(H, W)``.
        vert_colors: ``(B, V, 3)`` or ``(V, 3)`` albedo per vertex in [0, 1] (a
            ``(uv, uv_faces, tex)`` tuple is also accepted and treated as ``texture_map``).
        texture_map: ``(uv, uv_faces, tex)`` instead of ``vert_colors``: ``uv (Vt, 2)`` or
            ``(B, Vt, 2)`` OBJ-convention UVs, ``uv_faces (F, 3)`` int64 parallel to ``faces``,
            ``tex (B or 1, Ht, Wt, 3)`` top row first. If neither is given the albedo is 1.
        light: ``(B, 9, 3)`` SH coefficients (see :mod:`recon3d.render.shading`), applied per
            pixel to the interpolated normals expressed in the OpenGL camera frame
            (Deep3DFaceRecon's). None: unlit (colour = albedo).
        normals: ``(B, V, 3)`` camera-frame (OpenCV) vertex normals; default: area-weighted
            :func:`~recon3d.ops.geometry.vertex_normals` of ``verts_cam``.
        background: None (black), a scalar, an RGB ``(3,)`` or an image ``(B, H, W, 3)``.
        antialias: analytic silhouette antialiasing of the image and the mask (gives
            gradients w.r.t. silhouette positions).
        cull_backfaces: skip back faces.
        tex_filter: ``"bilinear"`` or ``"mip"`` (see :func:`~recon3d.render.texture`).
        backend: rasteriser backend name (see :func:`~recon3d.render.get_backend`).
        topology: precomputed :func:`~recon3d.render.antialiasing.edge_topology` of ``faces``.

    Returns:
        :class:`RenderOutput`.

    Raises:
        ShapeError: on wrong shapes or dtypes.
    """
    dims = check_shapes("render_mesh()", verts_cam=(verts_cam, "B V 3"), faces=(faces, "F 3"), K=(K, "B 3 3"),
                        normals=(normals, "B V 3"), light=(light, "B 9 3"))
    if isinstance(vert_colors, (tuple, list)):  # render_mesh(..., vert_colors=(uv, uv_faces, tex)) also accepted
        if texture_map is not None:
            raise ValueError("render_mesh(): pass vert_colors or texture_map, not both")
        vert_colors, texture_map = None, tuple(vert_colors)
    check_float("render_mesh()", verts_cam=verts_cam, vert_colors=vert_colors, light=light, normals=normals)
    if vert_colors is not None and texture_map is not None:
        raise ValueError("render_mesh(): pass vert_colors or texture_map, not both")
    B = dims["B"]
    H, W = int(image_size[0]), int(image_size[1])
    frags = rasterize(verts_cam, faces, K, (H, W), cull_backfaces=cull_backfaces, backend=backend)
    mask = frags.mask.to(verts_cam.dtype)

    if vert_colors is not None:
        albedo = interpolate(vert_colors.to(verts_cam.dtype), frags, faces)
    elif texture_map is not None:
        uv, uv_faces, tex = texture_map
        if uv_faces.shape != faces.shape:
            raise ShapeError(f"render_mesh(): uv_faces must be {tuple(faces.shape)} like faces, got {tuple(uv_faces.shape)}")
        uv_img = interpolate(uv.to(verts_cam.dtype), frags, uv_faces)
        albedo = texture(tex.to(verts_cam.dtype), uv_img, filter=tex_filter, mask=mask)
    else:
        albedo = mask.expand(B, H, W, 3)

    if light is not None:
        n_v = vertex_normals(verts_cam, faces) if normals is None else normals
        n_px = interpolate(n_v, frags, faces)
        n_px = n_px / n_px.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        shade = sh_shading(opencv_to_opengl_cam(n_px), light.to(verts_cam.dtype))
        color = albedo * shade
    else:
        color = albedo

    bg = _background(background, B, H, W, verts_cam)
    image = color * mask + bg * (1.0 - mask)
    if antialias:
        both = _antialias(torch.cat([image, mask], dim=-1), frags, frags.verts_px, faces,
                          topology=topology if topology is not None else edge_topology(faces))
        image, mask = both[..., :3], both[..., 3:]
    return RenderOutput(image=image, mask=mask, depth=frags.depth, tri_id=frags.tri_id)


class MeshRenderer(nn.Module):
    """Module form of :func:`render_mesh` for a fixed topology.

    Holds ``faces`` (and ``uv_faces``) and the precomputed edge topology as buffers;
    ``forward`` only calls :func:`render_mesh`.

    Args:
        faces: ``(F, 3)`` int64.
        image_size: ``(H, W)``.
        uv_faces: optional ``(F, 3)`` int64 UV index buffer for textured rendering.
        antialias, cull_backfaces, tex_filter, backend: as in :func:`render_mesh`.
    """

    def __init__(self, faces: torch.Tensor, image_size: tuple[int, int], *, uv_faces: torch.Tensor | None = None,
                 antialias: bool = True, cull_backfaces: bool = True, tex_filter: str = "bilinear",
                 backend: str = "torch") -> None:
        super().__init__()
        if faces.dim() != 2 or faces.shape[1] != 3 or faces.dtype != torch.int64:
            raise ShapeError(f"MeshRenderer(): faces must be (F, 3) int64, got {tuple(faces.shape)} {faces.dtype}")
        self.register_buffer("faces", faces.clone(), persistent=False)
        self.register_buffer("uv_faces", None if uv_faces is None else uv_faces.clone(), persistent=False)
        self.register_buffer("edge_opposite", edge_topology(faces).opposite, persistent=False)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.antialias = antialias
        self.cull_backfaces = cull_backfaces
        self.tex_filter = tex_filter
        self.backend = backend

    def forward(self, verts_cam: torch.Tensor, K: torch.Tensor, *, vert_colors: torch.Tensor | None = None,
                uv: torch.Tensor | None = None, tex: torch.Tensor | None = None, light: torch.Tensor | None = None,
                normals: torch.Tensor | None = None, background: torch.Tensor | float | None = None) -> RenderOutput:
        texture_map = None
        if tex is not None:
            if uv is None or self.uv_faces is None:
                raise ValueError("MeshRenderer.forward(): tex needs uv and a renderer built with uv_faces")
            texture_map = (uv, self.uv_faces, tex)
        return render_mesh(verts_cam, self.faces, K, self.image_size, vert_colors=vert_colors, texture_map=texture_map,
                           light=light, normals=normals, background=background, antialias=self.antialias,
                           cull_backfaces=self.cull_backfaces, tex_filter=self.tex_filter, backend=self.backend,
                           topology=EdgeTopology(self.edge_opposite))
