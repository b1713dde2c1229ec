"""Rotations, cameras and projection. Conventions: ``docs/CONVENTIONS.md``.

All functions are batch-first, pure and differentiable; they follow the input's dtype and device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ._checks import check_shapes
from .conventions import frontal_rotation
from .errors import ShapeError

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "euler_to_matrix",
    "matrix_to_euler",
    "pose_angles_to_matrix",
    "matrix_to_pose_angles",
    "intrinsics_from_fov",
    "project_points",
    "transform_points",
    "Camera",
    "OrthoCamera",
]


def _skew(v: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(v[..., 0])
    return torch.stack(
        [z, -v[..., 2], v[..., 1], v[..., 2], z, -v[..., 0], -v[..., 1], v[..., 0], z], dim=-1
    ).reshape(v.shape[:-1] + (3, 3))


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` (axis * angle in radians) to rotation matrices ``(..., 3, 3)``.

    Rodrigues' formula with a Taylor expansion near zero, so gradients are finite at 0.

    >>> R = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    >>> [round(x, 4) + 0.0 for x in (R @ torch.tensor([1.0, 0.0, 0.0])).tolist()]
    [0.0, 1.0, 0.0]
    """
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # (...,1,1)
    small = theta2 < 1e-8
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = theta2_safe.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    K = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)``, angle in [0, pi].

    >>> aa = torch.tensor([0.1, -0.2, 0.3])
    >>> torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(aa)), aa, atol=1e-6)
    True
    """
    # via quaternion for numerical robustness over the full range
    q = _matrix_to_quaternion(R)
    w = q[..., :1].clamp(min=-1.0, max=1.0)
    xyz = q[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, w)
    small = sin_half < 1e-7
    scale = torch.where(small, 2.0 / w.clamp(min=1e-7), angle / sin_half.clamp(min=1e-12))
    return xyz * scale


def _matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with w >= 0."""
    m = R
    t = torch.stack(
        [
            1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
            1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        dim=-1,
    )
    r = t.clamp(min=1e-12).sqrt()  # 2*|w|, 2*|x|, ...
    cand = torch.stack(
        [
            torch.stack([r[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
            / (2 * r[..., 0:1]),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], r[..., 1] ** 2, m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1)
            / (2 * r[..., 1:2]),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], r[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1)
            / (2 * r[..., 2:3]),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2], r[..., 3] ** 2], -1)
            / (2 * r[..., 3:4]),
        ],
        dim=-2,
    )
    idx = t.argmax(dim=-1)
    q = torch.gather(cand, -2, idx[..., None, None].expand(idx.shape + (1, 4))).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def _axis_rotation(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == "X":
        m = [o, z, z, z, c, -s, z, s, c]
    elif axis == "Y":
        m = [c, z, s, z, o, z, -s, z, c]
    elif axis == "Z":
        m = [c, -s, z, s, c, z, z, z, o]
    else:
        raise ValueError(f"euler axis must be X, Y or Z, got {axis!r}")
    return torch.stack(m, -1).reshape(angle.shape + (3, 3))


def euler_to_matrix(angles: torch.Tensor, order: str) -> torch.Tensor:
    """Euler angles ``(..., 3)`` in radians to matrices: ``R = R_{order[0]}(a0) @ R_{order[1]}(a1) @ R_{order[2]}(a2)``.

    The order string is explicit and required (``"ZYX"``, ``"XYZ"``, ...). The last axis acts
    first on a column vector.

    >>> R = euler_to_matrix(torch.tensor([0.0, math.pi / 2, 0.0]), "ZYX")
    >>> [round(x, 4) + 0.0 for x in (R @ torch.tensor([0.0, 0.0, 1.0])).tolist()]
    [1.0, 0.0, 0.0]
    """
    if len(order) != 3 or set(order) - set("XYZ"):
        raise ValueError(f"euler_to_matrix(): order must be 3 letters from XYZ, got {order!r}")
    if angles.shape[-1] != 3:
        raise ShapeError(f"euler_to_matrix(): angles must be (..., 3), got {tuple(angles.shape)}")
    mats = [_axis_rotation(ax, angles[..., i]) for i, ax in enumerate(order)]
    return mats[0] @ mats[1] @ mats[2]


def matrix_to_euler(R: torch.Tensor, order: str) -> torch.Tensor:
    """Inverse of :func:`euler_to_matrix` for Tait-Bryan orders (all three axes distinct).

    The middle angle is in [-pi/2, pi/2].

    >>> a = torch.tensor([0.3, -0.2, 0.1])
    >>> torch.allclose(matrix_to_euler(euler_to_matrix(a, "ZYX"), "ZYX"), a, atol=1e-6)
    True
    """
    if len(set(order)) != 3 or set(order) - set("XYZ"):
        raise ValueError(f"matrix_to_euler(): order must be a permutation of XYZ, got {order!r}")
    i, j, k = ("XYZ".index(c) for c in order)
    # R = Ri(a) Rj(b) Rk(c); sign of the permutation decides signs
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    b = torch.asin((sign * R[..., i, k]).clamp(-1.0, 1.0))
    a = torch.atan2(-sign * R[..., j, k], R[..., k, k])
    c = torch.atan2(-sign * R[..., i, j], R[..., i, i])
    return torch.stack([a, b, c], dim=-1)


def pose_angles_to_matrix(yaw_pitch_roll: torch.Tensor) -> torch.Tensor:
    """Head pose ``(..., 3)`` = (yaw, pitch, roll) radians to ``R_cam_from_model``.

    ``R_cam_from_model = frontal_rotation() @ Rz(roll) @ Ry(yaw) @ Rx(pitch)``; see
    :mod:`recon3d.conventions` for the signs.

    >>> R = pose_angles_to_matrix(torch.zeros(3))
    >>> R.diagonal().tolist()
    [1.0, -1.0, -1.0]
    """
    ypr = yaw_pitch_roll
    head = euler_to_matrix(torch.stack([ypr[..., 2], ypr[..., 0], ypr[..., 1]], -1), "ZYX")
    return frontal_rotation(ypr.dtype, ypr.device) @ head


def matrix_to_pose_angles(R: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pose_angles_to_matrix`: ``R_cam_from_model`` to (yaw, pitch, roll) radians.

    >>> ypr = torch.tensor([0.5, -0.1, 0.2])
    >>> torch.allclose(matrix_to_pose_angles(pose_angles_to_matrix(ypr)), ypr, atol=1e-6)
    True
    """
    head = frontal_rotation(R.dtype, R.device).T @ R
    zyx = matrix_to_euler(head, "ZYX")
    return torch.stack([zyx[..., 1], zyx[..., 2], zyx[..., 0]], -1)


def intrinsics_from_fov(fov_deg: float, image_size: tuple[int, int], batch: int = 1,
                        dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """Pinhole ``K`` ``(B, 3, 3)`` in pixels for a horizontal field of view (degrees, I/O unit)
    and a principal point at the image centre ((W-1)/2, (H-1)/2).

    >>> K = intrinsics_from_fov(90.0, (100, 200))
    >>> round(K[0, 0, 0].item(), 3), K[0, 0, 2].item(), K[0, 1, 2].item()
    (100.0, 99.5, 49.5)
    """
    H, W = image_size
    f = 0.5 * W / math.tan(math.radians(fov_deg) / 2.0)
    K = torch.tensor([[f, 0.0, (W - 1) / 2.0], [0.0, f, (H - 1) / 2.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
    return K.expand(batch, 3, 3).clone()


def transform_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rigid transform of column vectors: ``(B, N, 3)`` -> ``R @ x + t``.

    >>> transform_points(torch.ones(1, 1, 3), torch.eye(3)[None], torch.tensor([[0.0, 0.0, 1.0]])).tolist()
    [[[1.0, 1.0, 2.0]]]
    """
    check_shapes("transform_points()", points=(points, "B N 3"), R=(R, "B 3 3"), t=(t, "B 3"))
    return points @ R.transpose(-1, -2) + t[:, None, :]


def project_points(points_cam: torch.Tensor, K: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Perspective projection of camera-frame points ``(B, N, 3)`` to pixels ``(B, N, 2)``.

    >>> K = torch.tensor([[[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]]])
    >>> project_points(torch.tensor([[[0.1, -0.2, 2.0]]]), K).tolist()
    [[[55.0, 30.0]]]
    """
    check_shapes("project_points()", points_cam=(points_cam, "B N 3"), K=(K, "B 3 3"))
    z = points_cam[..., 2:3]
    z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    uvw = points_cam @ K.transpose(-1, -2)
    return uvw[..., :2] / z


@dataclass(frozen=True)
class Camera:
    """Pinhole camera. ``K (B,3,3)`` pixels, ``R (B,3,3)`` = ``R_cam_from_model``, ``t (B,3)`` metres,
    ``image_size = (H, W)``. OpenCV camera frame (+X right, +Y down, +Z forward)."""

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        check_shapes("Camera()", K=(self.K, "B 3 3"), R=(self.R, "B 3 3"), t=(self.t, "B 3"))

    @property
    def batch_size(self) -> int:
        return self.K.shape[0]

    def to_cam(self, points_model: torch.Tensor) -> torch.Tensor:
        """Model-frame points ``(B, N, 3)`` to the camera frame."""
        return transform_points(points_model, self.R, self.t)

    def project(self, points_model: torch.Tensor) -> torch.Tensor:
        """Model-frame points ``(B, N, 3)`` to pixels ``(B, N, 2)``."""
        return project_points(self.to_cam(points_model), self.K)

    @property
    def focal_px(self) -> torch.Tensor:
        return self.K[:, 0, 0]

    def pose_angles_deg(self) -> torch.Tensor:
        """(yaw, pitch, roll) in degrees, ``(B, 3)`` (I/O helper)."""
        return torch.rad2deg(matrix_to_pose_angles(self.R))

    def to(self, device: torch.device | str) -> "Camera":
        return replace(self, K=self.K.to(device), R=self.R.to(device), t=self.t.to(device))

    def detach(self) -> "Camera":
        return replace(self, K=self.K.detach(), R=self.R.detach(), t=self.t.detach())


@dataclass(frozen=True)
class OrthoCamera:
    """Weak-perspective (scaled orthographic) camera: ``x_px = scale * (R @ x)[:2] + t_px``.

    ``scale (B,)`` pixels per metre, ``R (B,3,3)`` = ``R_cam_from_model`` (OpenCV frame, so image y
    grows downwards), ``t_px (B,2)``. Depth for z-buffering is ``(R @ x)[2]`` in metres.
    """

    scale: torch.Tensor
    R: torch.Tensor
    t_px: torch.Tensor
    image_size: tuple[int, int]

    def project(self, points_model: torch.Tensor) -> torch.Tensor:
        check_shapes("OrthoCamera.project()", points=(points_model, "B N 3"), R=(self.R, "B 3 3"), t_px=(self.t_px, "B 2"))
        rotated = points_model @ self.R.transpose(-1, -2)
        return self.scale[:, None, None] * rotated[..., :2] + self.t_px[:, None, :]

    def to(self, device: torch.device | str) -> "OrthoCamera":
        return replace(self, scale=self.scale.to(device), R=self.R.to(device), t_px=self.t_px.to(device))

    def detach(self) -> "OrthoCamera":
        return replace(self, scale=self.scale.detach(), R=self.R.detach(), t_px=self.t_px.detach())
