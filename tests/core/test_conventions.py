"""Pins for every rule in docs/CONVENTIONS.md."""

import math

import torch

from recon3d import conventions as cv
from recon3d.camera import Camera, intrinsics_from_fov, pose_angles_to_matrix, project_points


def _frontal_camera(size=(100, 100)):
    R = pose_angles_to_matrix(torch.zeros(1, 3))
    return Camera(K=intrinsics_from_fov(30.0, size), R=R, t=torch.tensor([[0.0, 0.0, 1.0]]), image_size=size)


def test_model_plus_x_lands_right_of_centre():
    cam = _frontal_camera()
    p = cam.project(torch.tensor([[[0.05, 0.0, 0.0]]]))
    assert p[0, 0, 0] > 49.5 + 1


def test_model_plus_y_lands_in_upper_half():
    cam = _frontal_camera()
    p = cam.project(torch.tensor([[[0.0, 0.05, 0.0]]]))
    assert p[0, 0, 1] < 49.5 - 1


def test_model_plus_z_is_closer_to_camera():
    cam = _frontal_camera()
    z = cam.to_cam(torch.tensor([[[0.0, 0.0, 0.05], [0.0, 0.0, -0.05]]]))[0, :, 2]
    assert z[0] < z[1]


def test_positive_yaw_turns_nose_to_image_right():
    nose = torch.tensor([[[0.0, 0.0, 0.1]]])
    for sign in (1.0, -1.0):
        R = pose_angles_to_matrix(torch.tensor([[sign * math.radians(30), 0.0, 0.0]]))
        cam = Camera(K=intrinsics_from_fov(30.0, (100, 100)), R=R, t=torch.tensor([[0.0, 0.0, 1.0]]), image_size=(100, 100))
        x = cam.project(nose)[0, 0, 0]
        assert (x - 49.5) * sign > 1


def test_positive_pitch_tilts_nose_down():
    nose = torch.tensor([[[0.0, 0.0, 0.1]]])
    R = pose_angles_to_matrix(torch.tensor([[0.0, math.radians(20), 0.0]]))
    cam = Camera(K=intrinsics_from_fov(30.0, (100, 100)), R=R, t=torch.tensor([[0.0, 0.0, 1.0]]), image_size=(100, 100))
    assert cam.project(nose)[0, 0, 1] > 49.5 + 1


def test_positive_roll_is_counter_clockwise_in_image():
    # a point on the subject's left (+X, image right) moves up in the image under positive roll
    p = torch.tensor([[[0.05, 0.0, 0.0]]])
    R = pose_angles_to_matrix(torch.tensor([[0.0, 0.0, math.radians(20)]]))
    cam = Camera(K=intrinsics_from_fov(30.0, (100, 100)), R=R, t=torch.tensor([[0.0, 0.0, 1.0]]), image_size=(100, 100))
    assert cam.project(p)[0, 0, 1] < 49.5 - 1


def test_pixel_ndc_round_trip_and_corners():
    p = torch.rand(10, 2) * torch.tensor([63.0, 31.0])
    assert torch.allclose(cv.ndc_to_pixel(cv.pixel_to_ndc(p, (32, 64)), (32, 64)), p, atol=1e-5)
    corner = cv.pixel_to_ndc(torch.tensor([[-0.5, -0.5]]), (32, 64))
    assert torch.allclose(corner, torch.tensor([[-1.0, 1.0]]))


def test_uv_bottom_left_is_last_row_first_col():
    col, row = cv.uv_to_texel(torch.tensor([0.01, 0.01]), (8, 8)).round().tolist()
    assert (col, row) == (0.0, 7.0)


def test_uv_grid_sample_matches_texel_rule():
    tex = torch.zeros(1, 3, 8, 8)
    tex[0, :, 7, 0] = 1.0  # bottom-left texel (row 7 = bottom, top-first storage)
    uv = torch.tensor([[[[0.5 / 8, 0.5 / 8]]]])
    val = torch.nn.functional.grid_sample(tex, cv.uv_to_grid_sample(uv), align_corners=False)
    assert val.flatten()[0] == 1.0


def test_texel_uv_round_trip():
    t = torch.rand(20, 2) * 15
    assert torch.allclose(cv.uv_to_texel(cv.texel_to_uv(t, (16, 16)), (16, 16)), t, atol=1e-5)


def test_flips_are_involutions():
    x = torch.rand(2, 5, 4, 3)
    assert torch.equal(cv.flip_image_rows(cv.flip_image_rows(x)), x)
    assert torch.equal(cv.mirror_image_x(cv.mirror_image_x(x)), x)
    m = torch.rand(2, 5, 4)
    assert torch.equal(cv.flip_map_rows(cv.flip_map_rows(m)), m)
    p = torch.rand(7, 3)
    assert torch.equal(cv.opengl_to_opencv_cam(cv.opencv_to_opengl_cam(p)), p)
    assert torch.equal(cv.mirror_model_x(cv.mirror_model_x(p)), p)


def test_flip_image_rows_puts_bottom_row_on_top():
    x = torch.arange(3.0).view(1, 3, 1, 1)
    assert cv.flip_image_rows(x)[0, 0, 0, 0] == 2.0


def test_ibug_mirror_is_an_involution_permutation():
    m = cv.IBUG68_MIRROR
    assert sorted(m) == list(range(68))
    assert all(m[m[i]] == i for i in range(68))
    assert m[0] == 16 and m[36] == 45 and m[48] == 54 and m[30] == 30


def test_mirror_points_px():
    p = torch.tensor([[0.0, 3.0], [9.0, 1.0]])
    assert cv.mirror_points_px(p, 10).tolist() == [[9.0, 3.0], [0.0, 1.0]]


def test_pts_are_one_based():
    assert cv.pts_one_based_to_zero_based(torch.tensor([[1.0, 2.0]])).tolist() == [[0.0, 1.0]]


def test_projection_of_known_point():
    K = torch.tensor([[[200.0, 0.0, 64.0], [0.0, 200.0, 48.0], [0.0, 0.0, 1.0]]])
    p = project_points(torch.tensor([[[0.1, 0.05, 2.0]]]), K)
    assert torch.allclose(p, torch.tensor([[[74.0, 53.0]]]))


def test_pose_composition_order_yaw_after_pitch():
    # docs/CONVENTIONS.md: R = frontal @ Rz(roll) @ Ry(yaw) @ Rx(pitch), pitch acting first. With both
    # angles non-zero the order matters: swapping Ry and Rx gives a different matrix.
    yaw, pitch = 0.7, 0.4
    F = cv.frontal_rotation(torch.float64)
    R_yaw = pose_angles_to_matrix(torch.tensor([yaw, 0.0, 0.0], dtype=torch.float64))
    R_pitch = pose_angles_to_matrix(torch.tensor([0.0, pitch, 0.0], dtype=torch.float64))
    R = pose_angles_to_matrix(torch.tensor([yaw, pitch, 0.0], dtype=torch.float64))
    want = R_yaw @ F.T @ R_pitch  # F Ry Rx
    swapped = R_pitch @ F.T @ R_yaw  # F Rx Ry
    assert torch.allclose(R, want, atol=1e-12)
    assert not torch.allclose(R, swapped, atol=1e-3)
    # by hand: the nose (+Z model) after pitch then yaw, in the model frame
    c, s = math.cos, math.sin
    nose_model = torch.tensor([s(yaw) * c(pitch), -s(pitch), c(yaw) * c(pitch)], dtype=torch.float64)
    head = F.T @ R
    got = head @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(got, nose_model, atol=1e-12)
