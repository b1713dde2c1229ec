import math

import pytest
import torch

from recon3d.camera import (
    Camera,
    OrthoCamera,
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_pose_angles,
    pose_angles_to_matrix,
    transform_points,
)
from recon3d.errors import ShapeError


def test_axis_angle_round_trip_random():
    aa = torch.randn(100, 3, dtype=torch.float64)
    aa = aa / aa.norm(dim=-1, keepdim=True) * torch.rand(100, 1, dtype=torch.float64) * (math.pi - 1e-3)
    assert torch.allclose(matrix_to_axis_angle(axis_angle_to_matrix(aa)), aa, atol=1e-8)


def test_axis_angle_near_zero_and_pi():
    aa = torch.tensor([[0.0, 0.0, 0.0], [1e-6, 0.0, 0.0], [0.0, math.pi - 1e-4, 0.0]], dtype=torch.float64)
    R = axis_angle_to_matrix(aa)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3), atol=1e-10)
    assert torch.allclose(matrix_to_axis_angle(R), aa, atol=1e-6)


def test_rotation_matrices_are_orthonormal():
    R = axis_angle_to_matrix(torch.randn(50, 3))
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(50, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(50), atol=1e-5)


def test_gradcheck_axis_angle():
    aa = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    zero = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (zero,))


def test_gradcheck_euler():
    a = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: euler_to_matrix(x, "ZYX"), (a,))


@pytest.mark.parametrize("order", ["XYZ", "ZYX", "YXZ", "ZXY", "XZY", "YZX"])
def test_euler_round_trip_all_orders(order):
    a = (torch.rand(30, 3, dtype=torch.float64) - 0.5) * torch.tensor([3.0, 2.8, 3.0], dtype=torch.float64)
    assert torch.allclose(matrix_to_euler(euler_to_matrix(a, order), order), a, atol=1e-8)


def test_euler_order_is_explicit():
    with pytest.raises(ValueError):
        euler_to_matrix(torch.zeros(3), "XY")
    a = torch.tensor([0.3, 0.2, 0.1])
    assert not torch.allclose(euler_to_matrix(a, "XYZ"), euler_to_matrix(a, "ZYX"))


def test_pose_angles_round_trip():
    ypr = torch.tensor([[1.2, -0.4, 0.3], [-1.4, 0.2, -0.5]], dtype=torch.float64)
    assert torch.allclose(matrix_to_pose_angles(pose_angles_to_matrix(ypr)), ypr, atol=1e-8)


def test_transform_points_shape_error():
    with pytest.raises(ShapeError, match="transform_points"):
        transform_points(torch.zeros(2, 5, 3), torch.eye(3)[None], torch.zeros(2, 3))


def test_camera_project_and_inputs_not_mutated():
    K = torch.tensor([[[100.0, 0, 50], [0, 100.0, 50], [0, 0, 1]]])
    cam = Camera(K=K, R=torch.eye(3)[None], t=torch.tensor([[0.0, 0.0, 2.0]]), image_size=(100, 100))
    pts = torch.tensor([[[0.2, 0.0, 0.0]]])
    before = pts.clone()
    assert torch.allclose(cam.project(pts), torch.tensor([[[60.0, 50.0]]]))
    assert torch.equal(pts, before)
    assert cam.detach().to("cpu").K.shape == (1, 3, 3)


def test_ortho_camera_scales_in_pixels_per_metre():
    cam = OrthoCamera(scale=torch.tensor([1000.0]), R=pose_angles_to_matrix(torch.zeros(1, 3)),
                      t_px=torch.tensor([[50.0, 50.0]]), image_size=(100, 100))
    p = cam.project(torch.tensor([[[0.01, 0.02, 0.0]]]))
    assert torch.allclose(p, torch.tensor([[[60.0, 30.0]]]))
