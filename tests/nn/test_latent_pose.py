"""recon3d.nn.latent_pose: the seed-000 pose encoder (shapes, zero start, file round trip) and frame_pose."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.errors import ShapeError
from recon3d.nn import NETWORKS, save_network
from recon3d.nn.latent_pose import (
    PoseEncoder,
    edit_latents,
    fixed_noise,
    load_latent_pose,
    style_levels,
)


def test_style_levels_follow_psp_coarse_middle_fine():
    assert style_levels(10) == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert style_levels(14)[-1] == 2 and style_levels(14).count(0) == 3


def test_encoder_shapes_and_untrained_edit_is_the_identity():
    torch.manual_seed(0)
    E = PoseEncoder(64, 10, 32, widths=(8, 8, 16, 16, 16), fpn=16)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    d = E(x, torch.tensor([-30.0, 0.0, 45.0]), 0.0)
    assert d.shape == (3, 10, 32)
    ws = torch.randn(3, 10, 32)
    # the heads' last layers and the direction start at zero: an untrained encoder keeps W* as it is
    assert torch.equal(edit_latents(E, ws, x, 20.0, 5.0), ws)
    with pytest.raises(ShapeError):
        E(torch.rand(2, 3, 32, 32), 0.0, 0.0)
    with pytest.raises(ShapeError):
        E(x, torch.zeros(2), 0.0)
    with pytest.raises(ShapeError):
        edit_latents(E, torch.randn(3, 9, 32), x, 0.0, 0.0)
    with pytest.raises(ValueError):
        PoseEncoder(48)
    with pytest.raises(ValueError):
        PoseEncoder(64, 10, 32, edit_layers=11)


def _trained(E):
    for h in E.heads:
        torch.nn.init.normal_(h.out.weight, std=0.1)
    torch.nn.init.normal_(E.direction)
    return E


@pytest.mark.parametrize("shared", [True, False])
def test_only_the_edited_styles_change_and_the_pose_channels_steer(shared):
    torch.manual_seed(0)
    E = _trained(PoseEncoder(32, 6, 8, widths=(8, 8, 8, 8), fpn=8, edit_layers=4, shared=shared))
    x = torch.rand(2, 3, 32, 32)
    d = E(x, torch.tensor([-40.0, 40.0]), 0.0)
    assert torch.equal(d[:, 4:], torch.zeros_like(d[:, 4:]))
    assert bool((d[:, :4].abs() > 0).all())
    assert torch.allclose(d[:, 0], d[:, 3]) == shared  # one change shared by the edited styles, or one per style
    assert not torch.allclose(E(x, -40.0, 0.0), E(x, 40.0, 0.0))


def test_the_learned_direction_scales_with_the_change_of_yaw():
    E = PoseEncoder(32, 6, 8, widths=(8, 8, 8, 8), fpn=8, edit_layers=4)
    torch.nn.init.normal_(E.direction)
    x = torch.rand(1, 3, 32, 32)
    d1, d2 = E(x, 30.0, 10.0), E(x, 50.0, 10.0)  # heads still zero: only the linear path
    assert torch.allclose(d2, 2 * d1, atol=1e-6) and torch.allclose(d1[0, 0], E.direction * 20 / 90, atol=1e-6)


def test_round_trip_through_a_file(tmp_path):
    E = _trained(PoseEncoder(32, 6, 8, widths=(8, 8, 8, 8), fpn=8, edit_layers=4))
    path = tmp_path / "e.safetensors"
    save_network(E, path, NETWORKS["latent_pose"], meta={"generator": "abc"}, half=False)
    E2, meta = load_latent_pose(path)
    assert meta["generator"] == "abc" and E2.config == E.config
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(E(x, 10.0, -5.0), E2(x, 10.0, -5.0))


def test_fixed_noise_matches_the_inversion_noise():
    from recon3d.nn.stylegan2 import StyleGenerator

    G = StyleGenerator(32, z_dim=8, w_dim=8, channels={4: 8, 8: 8, 16: 8, 32: 8})
    a, b = fixed_noise(G, 3), fixed_noise(G, 3)
    assert len(a) == len(G.noise_shapes()) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == (3, 1, 4, 4)


def test_frame_pose_is_differentiable_and_mirrors_with_the_face():
    from skimage.data import astronaut

    from recon3d.detect import detect_faces
    from recon3d.nn.landmarks import POSE_REGRESSOR, frame_pose, load_regressor_net
    from recon3d.ops.align import align_face

    img = astronaut()
    det = detect_faces(img)[0]
    face = torch.from_numpy(align_face(img, np.asarray(det.lmk_px, np.float64), 64)).float()[None] / 127.5 - 1
    with pytest.raises(ValueError, match="fc head"):  # the default (v2) has the PIP head
        frame_pose(load_regressor_net(None)[0], face)
    reg = load_regressor_net(POSE_REGRESSOR)[0]
    x = torch.cat([face, face.flip(3)]).requires_grad_(True)
    pose = frame_pose(reg, x)
    assert pose.shape == (2, 3)
    assert abs(float((pose[0, 0] + pose[1, 0]).detach())) < 4.0  # a mirrored face reads as the opposite yaw
    pose[:, 0].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
