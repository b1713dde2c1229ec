"""Image anchors for whole-image warps around a face (the 2-D half of 3DDFA's "face profiling").

The projected boundary vertices of a face mesh, rings of anchors around the face that follow the
head with falling weights, and fixed points on the image border, triangulated: the mesh over which
:mod:`recon3d.edit.rotate` warps the photo and :mod:`recon3d.data.poses` renders re-posed training
views. Also the projection helpers and the head's rotation centre both use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .warp import triangulate

__all__ = ["ImageAnchors", "image_anchors", "head_centre", "project_to_pixels", "backproject"]

_RING_SCALES = (1.3, 1.7, 2.3)
_RING_WEIGHTS = (0.75, 0.4, 0.1)
_N_DIRECTIONS = 24


@dataclass(frozen=True)
class ImageAnchors:
    """The pose-independent whole-image mesh of :func:`image_anchors`.

    Attributes:
        anchor_xy: ``(A, 2)`` anchor points around the face (pixels), ``anchor_z`` their depth and
            ``anchor_w`` ``(A,)`` how much each follows the head (0.75 inner ring .. 0.1 outer).
        border_xy: ``(B, 2)`` fixed points just outside the image border.
        src_b: ``(Nb, 2)`` projected face-boundary vertices.
        keep: indices into ``concat(src_b, anchor_xy, border_xy)`` kept after de-duplication.
        src_all: ``(N, 2)`` the kept control points, ``tris`` ``(T, 3)`` their Delaunay triangles.
    """

    anchor_xy: np.ndarray
    anchor_z: np.ndarray
    anchor_w: np.ndarray
    border_xy: np.ndarray
    src_b: np.ndarray
    keep: np.ndarray
    src_all: np.ndarray
    tris: np.ndarray

    def moved(self, K: torch.Tensor, D: torch.Tensor, centre: torch.Tensor,
              boundary_cam: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Destinations of the kept control points when the head turns by ``D`` about ``centre``.

        Args:
            K: ``(3, 3)`` intrinsics; D: ``(3, 3)`` rotation; centre: ``(3,)`` camera frame.
            boundary_cam: ``(Nb, 3)`` the face-boundary vertices after the rotation.

        Returns:
            ``(dst (N, 2) in the order of src_all, anchor depth after the rotation (A,))``; each
            anchor moves ``anchor_w`` of the way with the head, border points stay.
        """
        a3r = (backproject(K, self.anchor_xy, self.anchor_z) - centre) @ D.T + centre
        w = self.anchor_w[:, None]
        dst_a = w * project_to_pixels(K, a3r) + (1 - w) * self.anchor_xy
        dst = np.concatenate([project_to_pixels(K, boundary_cam), dst_a, self.border_xy], 0)[self.keep]
        return dst, a3r[:, 2].detach().cpu().numpy()


def project_to_pixels(K: torch.Tensor, X: torch.Tensor) -> np.ndarray:
    """Pixel positions ``(N, 2)`` float64 (numpy) of camera-frame points ``(N, 3)`` under intrinsics ``K``
    (depth clamped at 1e-6); the tensors may be on any device."""
    p = X @ K.T
    return (p[:, :2] / p[:, 2:3].clamp_min(1e-6)).detach().cpu().numpy().astype(np.float64)


def head_centre(verts_model: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rotation centre of the head, camera frame: the vertex centroid pushed back (model -Z) by 0.35
    face widths."""
    width = float(verts_model[:, 0].max() - verts_model[:, 0].min())
    c_model = verts_model.mean(0) - torch.tensor([0.0, 0.0, 0.35 * width], dtype=verts_model.dtype,
                                                 device=verts_model.device)
    return R @ c_model + t


def backproject(K: torch.Tensor, xy: np.ndarray, z: np.ndarray) -> torch.Tensor:
    """Camera-frame points at depth ``z`` under pixels ``xy`` (float32, on the device of ``K``)."""
    Kinv = torch.linalg.inv(K.double()).float()
    h = torch.from_numpy(np.concatenate([xy, np.ones((len(xy), 1))], 1).astype(np.float32)).to(K.device)
    return (h @ Kinv.T) * torch.from_numpy(z.astype(np.float32)).to(K.device)[:, None]


def image_anchors(verts_cam: torch.Tensor, boundary: np.ndarray, K: torch.Tensor, H: int, W: int) -> ImageAnchors:
    """Mesh the whole ``H x W`` image around a face for a 3DDFA-style "face profiling" warp.

    The projected boundary vertices of the face mesh, rings of anchors at 1.3, 1.7 and 2.3 times
    the face's radius in 24 directions (each with the depth of the face boundary in its
    direction) and fixed points on the image border are triangulated with Delaunay.

    Args:
        verts_cam: ``(V, 3)`` face vertices in the camera frame.
        boundary: indices of the mesh's boundary vertices (:func:`recon3d.ops.geometry.mesh_boundary_vertices`).
        K: ``(3, 3)`` intrinsics.
        H, W: image size.
    """
    vb = verts_cam[boundary]
    pb = project_to_pixels(K, vb)
    pall = project_to_pixels(K, verts_cam)
    c2 = pall.mean(0)
    ang_b = np.arctan2(pb[:, 1] - c2[1], pb[:, 0] - c2[0])
    rad_b = np.hypot(pb[:, 0] - c2[0], pb[:, 1] - c2[1])
    r_face = max(float(np.percentile(np.hypot(*(pall - c2).T), 95)), 4.0)
    dirs = np.linspace(-math.pi, math.pi, _N_DIRECTIONS, endpoint=False)
    anchors, depths, weights = [], [], []
    for th in dirs:
        d = np.abs(np.angle(np.exp(1j * (ang_b - th))))
        sel = d < (math.pi / _N_DIRECTIONS * 1.5)
        if sel.any():
            k = np.flatnonzero(sel)[np.argmax(rad_b[sel])]
            r0, z0 = max(rad_b[k], 0.5 * r_face), float(vb[k, 2])
        else:
            r0, z0 = r_face, float(vb[:, 2].mean())
        for s, w in zip(_RING_SCALES, _RING_WEIGHTS, strict=True):
            anchors.append(c2 + s * r0 * np.array([math.cos(th), math.sin(th)]))
            depths.append(z0)
            weights.append(w)
    border = []
    n_side = 8
    for i in range(n_side + 1):
        f = i / n_side
        border += [[-1 + f * (W + 1), -1.0], [-1 + f * (W + 1), H], [-1.0, -1 + f * (H + 1)], [W, -1 + f * (H + 1)]]
    border = np.unique(np.round(np.array(border), 3), axis=0)
    anchors = np.array(anchors)
    inside = (anchors[:, 0] > 0) & (anchors[:, 0] < W - 1) & (anchors[:, 1] > 0) & (anchors[:, 1] < H - 1)
    anchor_xy = anchors[inside]
    src = np.concatenate([pb, anchor_xy, border], 0)
    # Delaunay needs distinct points: drop near-duplicates (keep the first)
    _, keep = np.unique(np.round(src, 1), axis=0, return_index=True)
    keep = np.sort(keep)
    src_all = src[keep]
    return ImageAnchors(anchor_xy=anchor_xy, anchor_z=np.array(depths)[inside], anchor_w=np.array(weights)[inside],
                        border_xy=border, src_b=pb, keep=keep, src_all=src_all, tris=triangulate(src_all))
