"""The public rasterisation entry points: project, run a backend's visibility pass, then recompute
the differentiable fragments (:mod:`recon3d.render.rasterizer` holds the pure-PyTorch reference
passes, :mod:`recon3d.render.backends` the pluggable visibility backends).
"""

from __future__ import annotations

import torch

from .._checks import check_shapes
from ..errors import ShapeError
from .backends import get_backend
from .fragments import Fragments
from .rasterizer import _check_common, fragments_from_tri_id, project_to_px

__all__ = ["rasterize", "rasterize_px"]



def rasterize(verts_cam: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, image_size: tuple[int, int], *,
              cull_backfaces: bool = True, near: float = 1e-3, backend: str = "torch") -> Fragments:
    """Rasterise a batch of triangle meshes seen by pinhole cameras.

    Args:
        verts_cam: ``(B, V, 3)`` float vertices in the OpenCV camera frame, metres.
        faces: ``(F, 3)`` int64, CCW seen from outside, shared across the batch.
        K: ``(B, 3, 3)`` intrinsics in pixels.
        image_size: ``(H, W)``.
        cull_backfaces: skip triangles seen from behind (CCW from outside appears clockwise in
            the y-down image; see the module docstring).
        near: triangles with any vertex at ``z <= near`` metres are dropped.
        backend: ``"torch"`` (reference), ``"nvdiffrast"`` or ``"pytorch3d"``; only the
            visibility pass differs (see :func:`recon3d.render.get_backend`).

    Returns:
        :class:`~recon3d.render.Fragments` with perspective-correct ``bary``; ``depth`` is 0 in
        the background.

    Raises:
        ShapeError: on wrong shapes or dtypes.
        BackendUnavailableError: when the requested backend is not installed.

    >>> v = torch.tensor([[[-1.0, -1, 4], [1, -1, 4], [0, 1, 4]]])
    >>> f = torch.tensor([[0, 2, 1]])  # clockwise in the y-down image = front-facing
    >>> K = torch.tensor([[[8.0, 0, 3.5], [0, 8.0, 3.5], [0, 0, 1]]])
    >>> frags = rasterize(v, f, K, (8, 8))
    >>> int((frags.tri_id >= 0).sum()), float(frags.depth.max())
    (8, 4.0)
    """
    _check_common("rasterize()", verts_cam, faces, image_size)
    check_shapes("rasterize()", verts_cam=(verts_cam, "B V 3"), K=(K, "B 3 3"))
    if K.dtype != verts_cam.dtype:
        raise ShapeError(f"rasterize(): K must have the dtype of verts_cam ({verts_cam.dtype}), got {K.dtype}")
    verts_px = project_to_px(verts_cam, K)
    tri_id = get_backend(backend).visibility(verts_px, faces, (int(image_size[0]), int(image_size[1])),
                                             cull_backfaces=cull_backfaces, near=near, perspective=True)
    return fragments_from_tri_id(verts_px, faces, tri_id, perspective=True)


def rasterize_px(verts_px_z: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                 cull_backfaces: bool = False, backend: str = "torch") -> Fragments:
    """Rasterise triangles given directly in pixel coordinates (2-D layouts, orthographic views).

    The third coordinate is a depth used only for the z-test (smaller wins; use a constant for
    a flat layout) and is interpolated linearly, as are the barycentrics (no perspective
    correction). Pixel centres are at integer (x, y), row 0 on top.

    Typical use, finding which triangle covers each texel of a ``(Ht, Wt)`` UV map::

        texel = conventions.uv_to_texel(uv, (Ht, Wt))               # (Vt, 2) (col, row)
        xyz = torch.cat([texel, torch.ones_like(texel[:, :1])], -1)  # constant depth
        frags = rasterize_px(xyz[None], uv_faces, (Ht, Wt))
        frags.tri_id  # (1, Ht, Wt) face per texel (-1: outside the layout)
        interpolate(verts_model, frags, uv_faces)  # careful: attributes indexed by uv_faces

    Args:
        verts_px_z: ``(B, V, 3)`` float (x px, y px, depth).
        faces: ``(F, 3)`` int64.
        image_size: ``(H, W)``.
        cull_backfaces: drop triangles with a non-negative signed pixel area (off by default: a
            UV layout's winding depends on the v-flip).
        backend: as in :func:`rasterize`.

    Returns:
        :class:`~recon3d.render.Fragments` with linear ``bary``; ``depth`` is the interpolated
        third coordinate (0 in the background).

    >>> xyz = torch.tensor([[[0.0, 0, 1], [3, 0, 1], [0, 3, 1]]])
    >>> frags = rasterize_px(xyz, torch.tensor([[0, 1, 2]]), (4, 4))
    >>> frags.tri_id[0].tolist()
    [[0, 0, 0, 0], [0, 0, 0, -1], [0, 0, -1, -1], [0, -1, -1, -1]]
    """
    _check_common("rasterize_px()", verts_px_z, faces, image_size)
    tri_id = get_backend(backend).visibility(verts_px_z, faces, (int(image_size[0]), int(image_size[1])),
                                             cull_backfaces=cull_backfaces, near=0.0, perspective=False)
    return fragments_from_tri_id(verts_px_z, faces, tri_id, perspective=False)
