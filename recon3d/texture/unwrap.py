"""UV rasterisation, baking per-vertex attributes into UV, and unwrapping a photo into a UV texture.

Conventions (see ``docs/CONVENTIONS.md``): UV origin bottom-left with v up, texture tensors
``(B, Ht, Wt, C)`` top row first, uv -> texel ``(col, row) = (u*Wt - 0.5, (1-v)*Ht - 0.5)``;
camera frame OpenCV, pixel centres at integers.

The unwrap is the "traditional" incomplete-UV-map generation of the thesis (ch. 4.3.1, fig. 4.2):
given the fitted 3-D shape, find for each texel its surface point, test its visibility with a
depth buffer, project it into the photo and sample the colour; the texture near silhouettes and
occlusion boundaries is unreliable, so the visible mask is eroded there.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .._checks import check_float, check_shapes
from ..camera import project_points
from ..conventions import uv_to_texel
from ..errors import ShapeError
from ..ops.geometry import vertex_normals
from ..render import rasterize, rasterize_px

__all__ = [
    "UVRaster",
    "uv_raster",
    "bake_vertex_attr_to_uv",
    "UnwrapResult",
    "unwrap_texture",
    "remove_shading",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UVRaster:
    """Which triangle covers each texel of a ``(Ht, Wt)`` UV map, and where in it.

    Attributes:
        tri_id: ``(Ht, Wt)`` int64 triangle index (into ``uv_faces`` and the matching 3-D
            ``faces``), ``-1`` outside the UV layout.
        bary: ``(Ht, Wt, 3)`` float32 barycentrics of the texel centre (0 outside the layout).
        mask: ``(Ht, Wt)`` bool, texels inside the layout.
        texel_index: ``(N,)`` int64 flat index ``row*Wt + col`` of each covered texel.
        texel_face: ``(N,)`` int64 triangle of each covered texel.
        texel_bary: ``(N, 3)`` float32 barycentrics of each covered texel.
        flip_index: ``(Ht, Wt)`` int64 flat index of the mirror texel (``col -> Wt-1-col``) when
            the layout is mirror symmetric and the mirror texel is in the layout; ``-1`` otherwise.
        resolution: ``(Ht, Wt)``.
        uv_symmetric: the layout is mirror symmetric about u = 0.5 (``u -> 1-u`` swaps left/right).
        n_faces: F, the number of triangles of the layout.
    """

    tri_id: torch.Tensor
    bary: torch.Tensor
    mask: torch.Tensor
    texel_index: torch.Tensor
    texel_face: torch.Tensor
    texel_bary: torch.Tensor
    flip_index: torch.Tensor
    resolution: tuple[int, int]
    uv_symmetric: bool
    n_faces: int

    def to(self, device: torch.device | str) -> "UVRaster":
        return replace(
            self, tri_id=self.tri_id.to(device), bary=self.bary.to(device), mask=self.mask.to(device),
            texel_index=self.texel_index.to(device), texel_face=self.texel_face.to(device),
            texel_bary=self.texel_bary.to(device), flip_index=self.flip_index.to(device),
        )


_CACHE: "OrderedDict[tuple, UVRaster]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def _resolution(resolution: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        res = (resolution, resolution)
    else:
        res = tuple(int(r) for r in resolution)
    if len(res) != 2 or min(res) < 1:
        raise ShapeError(f"uv_raster(): resolution must be an int or (Ht, Wt) >= 1, got {resolution!r}")
    return res  # type: ignore[return-value]


def uv_raster(
    model_or_uv,
    uv_faces: torch.Tensor | None = None,
    *,
    resolution: int | tuple[int, int] = 1024,
    uv_symmetric: bool | None = None,
) -> UVRaster:
    """Rasterise a UV layout: per texel the covering triangle and its barycentrics (cached).

    Results are cached per (layout contents, resolution, symmetry), so a second call with the same
    model is a dictionary look-up.

    Args:
        model_or_uv: a :class:`~recon3d.morphable.MorphableModel` (its ``uv``, ``uv_faces`` and
            ``uv_symmetric`` are used) or a ``(Vt, 2)`` float tensor of uv coordinates.
        uv_faces: ``(F, 3)`` int64 triangles into ``uv`` (only with a uv tensor).
        resolution: ``Ht = Wt`` or ``(Ht, Wt)``.
        uv_symmetric: whether ``u -> 1-u`` mirrors left/right (default: the model's flag, or
            False for a bare uv tensor).

    Returns:
        A :class:`UVRaster`.

    Raises:
        ShapeError: on wrong shapes or an invalid resolution.

    >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> r = uv_raster(uv, torch.tensor([[0, 1, 2], [1, 3, 2]]), resolution=4, uv_symmetric=True)
    >>> int(r.mask.sum()), r.flip_index[0, 0].item()
    (16, 3)
    """
    if uv_faces is None:
        if not hasattr(model_or_uv, "uv_faces"):
            raise ShapeError("uv_raster(): pass a MorphableModel, or a (Vt, 2) uv tensor and uv_faces")
        uv, uv_faces = model_or_uv.uv, model_or_uv.uv_faces
        sym = bool(model_or_uv.uv_symmetric) if uv_symmetric is None else bool(uv_symmetric)
    else:
        uv = model_or_uv
        sym = bool(uv_symmetric) if uv_symmetric is not None else False
    if not isinstance(uv, torch.Tensor) or not isinstance(uv_faces, torch.Tensor):
        raise ShapeError("uv_raster(): uv and uv_faces must be torch tensors")
    check_shapes("uv_raster()", uv=(uv, "Vt 2"), uv_faces=(uv_faces, "F 3"))
    check_float("uv_raster()", uv=uv)
    res = _resolution(resolution)
    uv_c = uv.detach().to("cpu", torch.float32).contiguous()
    f_c = uv_faces.detach().to("cpu", torch.int64).contiguous()
    if f_c.numel() and (int(f_c.min()) < 0 or int(f_c.max()) >= uv_c.shape[0]):
        raise ShapeError(f"uv_raster(): uv_faces index out of range [0, {uv_c.shape[0]})")
    digest = hashlib.sha1(uv_c.numpy().tobytes() + f_c.numpy().tobytes()).hexdigest()
    key = (digest, res, sym)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is not None:
        return hit.to(uv.device) if uv.device.type != "cpu" else hit
    out = _uv_raster_uncached(uv_c, f_c, res, sym)
    with _CACHE_LOCK:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out.to(uv.device) if uv.device.type != "cpu" else out


def _uv_raster_uncached(uv: torch.Tensor, uv_faces: torch.Tensor, res: tuple[int, int], sym: bool) -> UVRaster:
    Ht, Wt = res
    texel = uv_to_texel(uv, res)
    xyz = torch.cat([texel, torch.ones_like(texel[:, :1])], dim=-1)
    frags = rasterize_px(xyz[None], uv_faces, res)
    tri_id = frags.tri_id[0].clone()
    bary = frags.bary[0].to(torch.float32).clone()
    mask = tri_id >= 0
    texel_index = torch.nonzero(mask.flatten(), as_tuple=False)[:, 0]
    texel_face = tri_id.flatten()[texel_index]
    texel_bary = bary.reshape(-1, 3)[texel_index]
    flip = torch.full((Ht, Wt), -1, dtype=torch.int64)
    if sym:
        rows = torch.arange(Ht)[:, None].expand(Ht, Wt)
        cols = (Wt - 1 - torch.arange(Wt))[None, :].expand(Ht, Wt)
        idx = rows * Wt + cols
        ok = mask & mask.flatten()[idx]
        flip = torch.where(ok, idx, flip)
    return UVRaster(
        tri_id=tri_id, bary=bary, mask=mask, texel_index=texel_index, texel_face=texel_face,
        texel_bary=texel_bary, flip_index=flip, resolution=res, uv_symmetric=sym, n_faces=int(uv_faces.shape[0]),
    )


def _texel_attr(attr: torch.Tensor, faces: torch.Tensor, uvr: UVRaster) -> torch.Tensor:
    """Barycentric interpolation of per-vertex ``attr (B, V, C)`` at the covered texels: ``(B, N, C)``."""
    tri = faces[uvr.texel_face]  # (N, 3)
    w = uvr.texel_bary.to(attr.dtype)
    return (attr[:, tri[:, 0]] * w[None, :, 0:1] + attr[:, tri[:, 1]] * w[None, :, 1:2]
            + attr[:, tri[:, 2]] * w[None, :, 2:3])


def _scatter_texels(vals: torch.Tensor, uvr: UVRaster, fill: float = 0.0) -> torch.Tensor:
    """Packed ``(B, N, C)`` (or ``(B, N)``) texel values to a ``(B, Ht, Wt, C)`` (``(B, Ht, Wt)``) map."""
    Ht, Wt = uvr.resolution
    B = vals.shape[0]
    out = vals.new_full((B, Ht * Wt) + tuple(vals.shape[2:]), fill)
    out[:, uvr.texel_index] = vals
    return out.view((B, Ht, Wt) + tuple(vals.shape[2:]))


def _check_faces_uvr(where: str, faces: torch.Tensor, uvr: UVRaster, n_verts: int) -> None:
    if faces.dtype != torch.int64:
        raise ShapeError(f"{where}: faces must be int64, got {faces.dtype}")
    if faces.shape[0] != uvr.n_faces:
        raise ShapeError(f"{where}: faces has {faces.shape[0]} triangles but the UVRaster's layout has {uvr.n_faces}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n_verts):
        raise ShapeError(f"{where}: faces index out of range [0, {n_verts})")


def bake_vertex_attr_to_uv(attr: torch.Tensor, faces: torch.Tensor, uvr: UVRaster, *, fill: float = 0.0) -> torch.Tensor:
    """Bake a per-vertex attribute (albedo, normals, SH shading, positions) into a UV map.

    Args:
        attr: ``(B, V, C)`` float per-vertex values.
        faces: ``(F, 3)`` int64 3-D triangles; triangle ``f`` of ``faces`` is triangle ``f`` of the
            UV layout the raster was made from.
        uvr: from :func:`uv_raster` (fixes the resolution).
        fill: value outside the layout.

    Returns:
        ``(B, Ht, Wt, C)`` map, barycentrically interpolated, ``fill`` outside the layout.

    Raises:
        ShapeError: on wrong shapes or a face count that does not match the layout.

    >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> f = torch.tensor([[0, 1, 2], [1, 3, 2]])
    >>> tex = bake_vertex_attr_to_uv(torch.ones(1, 4, 3), f, uv_raster(uv, f, resolution=8))
    >>> tuple(tex.shape), float(tex.min())
    ((1, 8, 8, 3), 1.0)
    """
    check_shapes("bake_vertex_attr_to_uv()", attr=(attr, "B V C"), faces=(faces, "F 3"))
    check_float("bake_vertex_attr_to_uv()", attr=attr)
    _check_faces_uvr("bake_vertex_attr_to_uv()", faces, uvr, attr.shape[1])
    return _scatter_texels(_texel_attr(attr, faces, uvr), uvr, fill)


@dataclass(frozen=True)
class UnwrapResult:
    """A photo's colours moved into UV space.

    Attributes:
        texture: ``(B, Ht, Wt, 3)`` sampled colours, 0 where not visible.
        confidence: ``(B, Ht, Wt)`` in [0, 1]: cosine of the view angle on visible texels, 0 elsewhere.
        visible: ``(B, Ht, Wt)`` bool, texels seen by the camera (after the edge erosion).
    """

    texture: torch.Tensor
    confidence: torch.Tensor
    visible: torch.Tensor

    def to(self, device: torch.device | str) -> "UnwrapResult":
        return UnwrapResult(self.texture.to(device), self.confidence.to(device), self.visible.to(device))

    def detach(self) -> "UnwrapResult":
        return UnwrapResult(self.texture.detach(), self.confidence.detach(), self.visible.detach())


def unwrap_texture(
    image: torch.Tensor,
    verts_cam: torch.Tensor,
    faces: torch.Tensor,
    K: torch.Tensor,
    uvr: UVRaster,
    *,
    normals: torch.Tensor | None = None,
    min_cos: float = 0.1,
    erode_px: int = 2,
    depth_tol: float = 0.01,
) -> UnwrapResult:
    """Sample a photo into the UV map of a fitted mesh, with visibility and view-angle confidence.

    For each texel: its surface point (barycentric interpolation of ``verts_cam``) is projected
    with ``K`` and the image is sampled bilinearly there. The texel is visible when the point
    projects inside the image, the (interpolated) normal faces the camera with
    ``cos(view angle) > min_cos``, and its depth agrees with the depth buffer of
    :func:`recon3d.render.rasterize` at that pixel (relative tolerance ``depth_tol`` plus the depth
    change across one pixel on a slanted surface). As in the thesis (ch. 4.3.1) unreliable edges
    are dropped: the rendered face mask is eroded by ``erode_px`` pixels in the image (silhouettes),
    and the visible mask by ``erode_px`` texels in UV where it borders invisible layout texels
    (occlusion boundaries, grazing angles); the layout's own border is not eroded.

    Args:
        image: ``(B, H, W, 3)`` float RGB in [0, 1], row 0 on top.
        verts_cam: ``(B, V, 3)`` float, OpenCV camera frame, metres.
        faces: ``(F, 3)`` int64, CCW seen from outside, matching the layout of ``uvr``.
        K: ``(B, 3, 3)`` intrinsics in pixels.
        uvr: from :func:`uv_raster` (fixes the texture resolution).
        normals: optional ``(B, V, 3)`` per-vertex normals in the camera frame (default: the
            area-weighted vertex normals of ``verts_cam``).
        min_cos: minimum cosine between the normal and the direction to the camera.
        erode_px: erosion radius in texels (0 disables it).
        depth_tol: depth-test tolerance, relative to the depth.

    Returns:
        :class:`UnwrapResult` with ``(B, Ht, Wt, ·)`` maps (computed without gradients).

    Raises:
        ShapeError: on wrong shapes or dtypes.
    """
    where = "unwrap_texture()"
    d = check_shapes(where, image=(image, "B H W 3"), verts_cam=(verts_cam, "B V 3"), faces=(faces, "F 3"),
                     K=(K, "B 3 3"), normals=(normals, "B V 3"))
    check_float(where, image=image, verts_cam=verts_cam, K=K, normals=normals)
    _check_faces_uvr(where, faces, uvr, d["V"])
    if erode_px < 0:
        raise ShapeError(f"{where}: erode_px must be >= 0, got {erode_px}")
    B, H, W = d["B"], d["H"], d["W"]
    uvr = uvr.to(verts_cam.device) if uvr.tri_id.device != verts_cam.device else uvr
    dtype = verts_cam.dtype

    with torch.no_grad():
        pts = _texel_attr(verts_cam, faces, uvr)  # (B, N, 3)
        if normals is None:
            normals = vertex_normals(verts_cam, faces)
        nrm = _texel_attr(normals.to(dtype), faces, uvr)
        nrm = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        dist = pts.norm(dim=-1).clamp_min(1e-12)
        cos = -(nrm * pts).sum(-1) / dist  # to the camera at the origin
        xy = project_points(pts, K)  # (B, N, 2) pixels
        z = pts[..., 2]
        inside = (z > 0) & (xy[..., 0] > -0.5) & (xy[..., 0] < W - 0.5) & (xy[..., 1] > -0.5) & (xy[..., 1] < H - 0.5)

        frags = rasterize(verts_cam, faces, K, (H, W))
        col = xy[..., 0].round().clamp(0, W - 1).long()
        row = xy[..., 1].round().clamp(0, H - 1).long()
        flat = row * W + col
        zbuf = frags.depth.reshape(B, -1).gather(1, flat).to(dtype)
        face_px = frags.tri_id >= 0  # (B, H, W)
        if erode_px > 0:  # the thesis erodes the face mask in the image (silhouettes)
            face_px = _erode(face_px, erode_px)
        covered = face_px.reshape(B, -1).gather(1, flat)
        focal = K[:, 0, 0].abs().clamp_min(1e-12)[:, None]
        tan = (1.0 - cos.clamp(-1, 1) ** 2).clamp_min(0).sqrt() / cos.clamp_min(1e-3)
        tol = depth_tol * z + 0.75 * (z / focal) * tan
        visible = inside & covered & (cos > min_cos) & ((z - zbuf).abs() <= tol)

        grid = torch.stack([(2.0 * xy[..., 0] + 1.0) / W - 1.0, (2.0 * xy[..., 1] + 1.0) / H - 1.0], dim=-1)
        rgb = F.grid_sample(image.permute(0, 3, 1, 2).to(dtype), grid[:, None], mode="bilinear",
                            padding_mode="border", align_corners=False)[:, :, 0].permute(0, 2, 1)  # (B, N, 3)

        vis_map = _scatter_texels(visible.to(dtype), uvr) > 0.5  # (B, Ht, Wt)
        if erode_px > 0:  # occlusion boundaries inside the layout (not the layout's own border)
            vis_map = _erode(vis_map | ~uvr.mask[None], erode_px) & uvr.mask[None]
        texture = _scatter_texels(rgb, uvr) * vis_map[..., None].to(dtype)
        confidence = _scatter_texels(cos.clamp(0, 1), uvr) * vis_map.to(dtype)
    log.debug("unwrap_texture: %.1f%% of the layout visible", 100.0 * float(vis_map.float().mean()) /
              max(float(uvr.mask.float().mean()), 1e-12))
    return UnwrapResult(texture=texture.to(image.dtype), confidence=confidence.to(image.dtype), visible=vis_map)


def _erode(mask: torch.Tensor, r: int) -> torch.Tensor:
    """Binary erosion of a ``(B, H, W)`` bool mask by a ``(2r+1)²`` square; outside the image counts as set."""
    hole = (~mask).to(torch.float32)[:, None]
    return F.max_pool2d(hole, 2 * r + 1, stride=1, padding=r)[:, 0] < 0.5


def remove_shading(texture: torch.Tensor, shading_uv: torch.Tensor, *, min_shading: float = 0.05,
                   max_value: float = 1.0) -> torch.Tensor:
    """De-light a texture: divide by the fitted shading baked into UV, then clamp to ``[0, max_value]``.

    Bake the shading with :func:`bake_vertex_attr_to_uv` of ``recon3d.render.sh_shading(normals,
    light)`` evaluated per vertex.

    Args:
        texture: ``(B, Ht, Wt, 3)`` float.
        shading_uv: ``(B, Ht, Wt, 3)`` or ``(B, Ht, Wt, 1)`` float shading (irradiance) factors.
        min_shading: shading is clamped below at this value before dividing (avoids blow-ups).
        max_value: upper clamp of the result.

    Returns:
        ``(B, Ht, Wt, 3)`` albedo estimate.

    Raises:
        ShapeError: on mismatched shapes.

    >>> remove_shading(torch.full((1, 1, 1, 3), 0.4), torch.full((1, 1, 1, 1), 0.5)).flatten().tolist()
    [0.800000011920929, 0.800000011920929, 0.800000011920929]
    """
    check_shapes("remove_shading()", texture=(texture, "B Ht Wt 3"), shading_uv=(shading_uv, "B Ht Wt *"))
    check_float("remove_shading()", texture=texture, shading_uv=shading_uv)
    if shading_uv.shape[-1] not in (1, 3):
        raise ShapeError(f"remove_shading(): shading_uv must have 1 or 3 channels, got {tuple(shading_uv.shape)}")
    if not (min_shading > 0 and math.isfinite(max_value)):
        raise ShapeError(f"remove_shading(): min_shading must be > 0 and max_value finite, got {min_shading}, {max_value}")
    return (texture / shading_uv.clamp_min(min_shading)).clamp(0.0, max_value)
