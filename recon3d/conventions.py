"""recon3d's coordinate conventions, implemented in one place.

Read ``docs/CONVENTIONS.md`` for the prose. Every axis flip, row flip or index shift that
recon3d performs goes through a named function in this module; nowhere else in the code base
negates an axis inline.

Summary
-------
* Units: metres, radians, pixels. Degrees only at I/O (CLI flags, ``params.json``).
* Model frame: right-handed, +X the subject's left (viewer's right when frontal), +Y up,
  +Z out of the face (towards a frontal camera).
* Camera frame: OpenCV, +X right, +Y down, +Z forward. ``x_cam = R @ x_model + t``.
* Pixels: x right, y down, pixel (row i, col j) has its centre at (x, y) = (j, i).
* NDC (inside recon3d.render only): OpenGL, x right, y up, both in [-1, 1] over the image.
* Images: ``(B, H, W, C)`` float32 RGB in [0, 1], row 0 at the top.
* UV: origin bottom-left, v up (OBJ). uv maps to texel ``(col, row) = (u*Wt - 0.5, (1-v)*Ht - 0.5)``.
* Faces: ``(F, 3)`` int64, 0-based, counter-clockwise seen from outside.
* Landmarks: iBUG 68, 0-based. 300-W ``.pts`` files are 1-based.
* Head pose: ``R_cam_from_model = frontal_rotation() @ R_head`` with
  ``R_head = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` about the model axes. Positive yaw turns the nose
  to the image right (the subject's left), positive pitch tilts the nose down, positive roll
  turns the face counter-clockwise in the image.
"""

from __future__ import annotations

import torch

__all__ = [
    "frontal_rotation",
    "pixel_to_ndc",
    "ndc_to_pixel",
    "flip_image_rows",
    "uv_to_texel",
    "texel_to_uv",
    "uv_to_grid_sample",
    "opencv_to_opengl_cam",
    "opengl_to_opencv_cam",
    "mirror_model_x",
    "mirror_image_x",
    "mirror_points_px",
    "pts_one_based_to_zero_based",
    "rgb_to_bgr",
    "uv_obj_to_gltf",
    "uv_gltf_to_obj",
    "uv_obj_to_open3d",
    "IBUG68_JAW",
    "IBUG68_MIRROR",
]

#: iBUG-68 indices of the jaw contour (0..16, from the subject's right ear to the left).
IBUG68_JAW = tuple(range(17))

#: iBUG-68 index of the mirrored landmark (left <-> right), used when an image is mirrored.
IBUG68_MIRROR = (
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # brows 17..26
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # right eye -> left eye
    + [39, 38, 37, 36, 41, 40]  # left eye -> right eye
    + [54, 53, 52, 51, 50, 49, 48]  # outer lips upper
    + [59, 58, 57, 56, 55]  # outer lips lower
    + [64, 63, 62, 61, 60]  # inner lips upper
    + [67, 66, 65]  # inner lips lower
)


def frontal_rotation(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """``R_cam_from_model`` of a face looking straight into the camera: ``diag(1, -1, -1)``.

    Model +Y (up) becomes camera -Y (up in the image) and model +Z (out of the face) becomes
    camera -Z (towards the camera).

    >>> frontal_rotation().diagonal().tolist()
    [1.0, -1.0, -1.0]
    """
    return torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=dtype, device=device))


def pixel_to_ndc(xy: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Pixel coordinates ``(..., 2)`` (x right, y down, centres at integers) to OpenGL NDC.

    ``x_ndc = (2x + 1)/W - 1``, ``y_ndc = 1 - (2y + 1)/H``.

    >>> pixel_to_ndc(torch.tensor([[0.0, 0.0], [3.0, 1.0]]), (2, 4)).tolist()
    [[-0.75, 0.5], [0.75, -0.5]]
    """
    H, W = image_size
    x = (2.0 * xy[..., 0] + 1.0) / W - 1.0
    y = 1.0 - (2.0 * xy[..., 1] + 1.0) / H
    return torch.stack([x, y], dim=-1)


def ndc_to_pixel(ndc: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`pixel_to_ndc`.

    >>> ndc_to_pixel(torch.tensor([[-0.75, 0.5]]), (2, 4)).tolist()
    [[0.0, 0.0]]
    """
    H, W = image_size
    x = ((ndc[..., 0] + 1.0) * W - 1.0) / 2.0
    y = ((1.0 - ndc[..., 1]) * H - 1.0) / 2.0
    return torch.stack([x, y], dim=-1)


def flip_image_rows(img: torch.Tensor) -> torch.Tensor:
    """Reverse the row order of a ``(B, H, W, C)`` (or ``(H, W, C)`` / ``(B, H, W)``) image.

    Used exactly where a bottom-up buffer (OpenGL, nvdiffrast) meets recon3d's top-down images.
    ``dim=-3`` for channel-last images, ``dim=-2`` for ``(B, H, W)`` maps is chosen by the caller
    through :func:`flip_map_rows`.

    >>> flip_image_rows(torch.arange(2.0).view(1, 2, 1, 1)).flatten().tolist()
    [1.0, 0.0]
    """
    return torch.flip(img, dims=[-3])


def flip_map_rows(m: torch.Tensor) -> torch.Tensor:
    """Reverse the row order of a ``(B, H, W)`` map (triangle ids, depth, masks).

    >>> flip_map_rows(torch.arange(2).view(1, 2, 1)).flatten().tolist()
    [1, 0]
    """
    return torch.flip(m, dims=[-2])


def uv_to_texel(uv: torch.Tensor, tex_size: tuple[int, int]) -> torch.Tensor:
    """UV (origin bottom-left, v up) to continuous texel coordinates ``(col, row)``, row 0 at the top.

    ``col = u*Wt - 0.5``, ``row = (1 - v)*Ht - 0.5``; texel centres are at integers.

    >>> uv_to_texel(torch.tensor([[0.125, 0.875]]), (4, 4)).tolist()
    [[0.0, 0.0]]
    """
    Ht, Wt = tex_size
    col = uv[..., 0] * Wt - 0.5
    row = (1.0 - uv[..., 1]) * Ht - 0.5
    return torch.stack([col, row], dim=-1)


def texel_to_uv(colrow: torch.Tensor, tex_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`uv_to_texel`.

    >>> texel_to_uv(torch.tensor([[0.0, 3.0]]), (4, 4)).tolist()
    [[0.125, 0.125]]
    """
    Ht, Wt = tex_size
    u = (colrow[..., 0] + 0.5) / Wt
    v = 1.0 - (colrow[..., 1] + 0.5) / Ht
    return torch.stack([u, v], dim=-1)


def uv_to_grid_sample(uv: torch.Tensor) -> torch.Tensor:
    """UV to the ``grid`` argument of ``torch.nn.functional.grid_sample`` (``align_corners=False``)
    for a texture stored top row first: ``gx = 2u - 1``, ``gy = 1 - 2v``.

    >>> uv_to_grid_sample(torch.tensor([[0.0, 0.0]])).tolist()
    [[-1.0, 1.0]]
    """
    return torch.stack([2.0 * uv[..., 0] - 1.0, 1.0 - 2.0 * uv[..., 1]], dim=-1)


def opencv_to_opengl_cam(points: torch.Tensor) -> torch.Tensor:
    """Camera-frame points from OpenCV (+Y down, +Z forward) to OpenGL (+Y up, -Z forward).

    >>> opencv_to_opengl_cam(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
    [[1.0, -2.0, -3.0]]
    """
    return points * points.new_tensor([1.0, -1.0, -1.0])


def opengl_to_opencv_cam(points: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`opencv_to_opengl_cam` (the same flip).

    >>> opengl_to_opencv_cam(torch.tensor([[1.0, -2.0, -3.0]])).tolist()
    [[1.0, 2.0, 3.0]]
    """
    return points * points.new_tensor([1.0, -1.0, -1.0])


def mirror_model_x(points: torch.Tensor) -> torch.Tensor:
    """Mirror model-frame points left <-> right (negate X).

    >>> mirror_model_x(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
    [[-1.0, 2.0, 3.0]]
    """
    return points * points.new_tensor([-1.0, 1.0, 1.0])


def mirror_image_x(img: torch.Tensor) -> torch.Tensor:
    """Mirror a channel-last image ``(..., H, W, C)`` left <-> right.

    >>> mirror_image_x(torch.arange(2.0).view(1, 2, 1)).flatten().tolist()
    [1.0, 0.0]
    """
    return torch.flip(img, dims=[-2])


def mirror_points_px(xy: torch.Tensor, width: int) -> torch.Tensor:
    """Pixel points ``(..., 2)`` of an image mirrored left <-> right: ``x' = W - 1 - x``.

    Landmark identities must also be swapped with :data:`IBUG68_MIRROR`.

    >>> mirror_points_px(torch.tensor([[0.0, 5.0]]), 10).tolist()
    [[9.0, 5.0]]
    """
    return torch.stack([(width - 1) - xy[..., 0], xy[..., 1]], dim=-1)


def pts_one_based_to_zero_based(xy: torch.Tensor) -> torch.Tensor:
    """300-W ``.pts`` coordinates (1-based) to recon3d pixel coordinates (0-based centres).

    >>> pts_one_based_to_zero_based(torch.tensor([[1.0, 1.0]])).tolist()
    [[0.0, 0.0]]
    """
    return xy - 1.0


def rgb_to_bgr(img: torch.Tensor) -> torch.Tensor:
    """Swap the channel order of a channel-last image (RGB <-> BGR), e.g. at a cv2 boundary.

    >>> rgb_to_bgr(torch.tensor([[1.0, 2.0, 3.0]])).tolist()
    [[3.0, 2.0, 1.0]]
    """
    return img.flip(-1)


def _flip_v(uv):
    """``(u, v) -> (u, 1 - v)`` for a numpy array or torch tensor ``(..., 2)``; returns a new array."""
    if isinstance(uv, torch.Tensor):
        return torch.stack([uv[..., 0], 1.0 - uv[..., 1]], dim=-1)
    import numpy as np

    uv = np.asarray(uv)
    return np.stack([uv[..., 0], 1.0 - uv[..., 1]], axis=-1)


def uv_obj_to_gltf(uv):
    """recon3d/OBJ UV (origin bottom-left, v up) to glTF UV (origin top-left, v down): ``v' = 1 - v``.

    Accepts a numpy array or a torch tensor ``(..., 2)``. (trimesh's ``TextureVisuals`` already
    uses the OBJ convention and converts when it writes glTF, so recon3d only needs this when it
    reads or writes raw glTF accessors.)

    >>> uv_obj_to_gltf(torch.tensor([[0.25, 0.0]])).tolist()
    [[0.25, 1.0]]
    """
    return _flip_v(uv)


def uv_gltf_to_obj(uv):
    """Inverse of :func:`uv_obj_to_gltf` (the same flip).

    >>> uv_gltf_to_obj(torch.tensor([[0.25, 1.0]])).tolist()
    [[0.25, 0.0]]
    """
    return _flip_v(uv)


def uv_obj_to_open3d(uv):
    """recon3d/OBJ UV to Open3D's legacy ``TriangleMesh.triangle_uvs`` convention (v = 0 is row 0,
    the top of the texture image): ``v' = 1 - v``. Pinned by ``tests/test_viewer.py``.

    >>> uv_obj_to_open3d(torch.tensor([[0.0, 0.75]])).tolist()
    [[0.0, 0.25]]
    """
    return _flip_v(uv)
