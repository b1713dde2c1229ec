"""Backend selection and agreement of the optional backends with the torch reference."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import trimesh

from recon3d.camera import intrinsics_from_fov, pose_angles_to_matrix, transform_points
from recon3d.errors import BackendUnavailableError
from recon3d.render import get_backend, project_to_px, rasterize
from recon3d.render._nvdiffrast import px_to_clip
from recon3d.render._pytorch3d import px_to_pytorch3d_ndc
from recon3d.render.rasterizer import visibility_torch


def _scene(B=2, size=(64, 80)):
    m = trimesh.creation.icosphere(subdivisions=3)
    v = torch.tensor(m.vertices, dtype=torch.float32) * 0.1
    f = torch.tensor(m.faces, dtype=torch.int64)
    R = pose_angles_to_matrix(torch.tensor([[0.3, 0.1, 0.0], [-0.5, 0.2, 0.3]])[:B])
    vc = transform_points(v[None].expand(B, -1, -1), R, torch.tensor([[0.0, 0.01, 0.5]]).expand(B, 3))
    vc = vc * torch.tensor([1.0, 1.3, 1.0])  # an ellipsoid, so silhouettes are not circles
    return vc, f, intrinsics_from_fov(30.0, size, batch=B)


def test_get_backend_torch_and_errors():
    assert get_backend("torch").name == "torch"
    assert get_backend(get_backend("torch")).name == "torch"
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("opengl")


@pytest.mark.skipif(importlib.util.find_spec("pytorch3d") is not None, reason="pytorch3d is installed")
def test_missing_pytorch3d_raises_with_pip_command():
    with pytest.raises(BackendUnavailableError, match="pip install easypytorch3d"):
        get_backend("pytorch3d")


def test_missing_nvdiffrast_raises_with_pip_command():
    if importlib.util.find_spec("nvdiffrast") is not None and torch.cuda.is_available():
        pytest.skip("nvdiffrast is usable here")
    with pytest.raises(BackendUnavailableError, match="pip install nvdiffrast"):
        get_backend("nvdiffrast")
    vc, f, K = _scene(1)
    with pytest.raises(BackendUnavailableError):
        rasterize(vc, f, K, (64, 80), backend="nvdiffrast")


def test_coordinate_helpers_of_optional_backends():
    xy = torch.tensor([[[0.0, 0.0, 2.0], [79.0, 63.0, 2.0]]])
    ndc = px_to_pytorch3d_ndc(xy, (64, 80))  # +X left, +Y up, shorter side spans [-1, 1]
    assert ndc[0, 0, 0] > 0 and ndc[0, 0, 1] > 0 and ndc[0, 1, 0] < 0 and ndc[0, 1, 1] < 0
    assert abs(float(ndc[0, 0, 1]) - (1 - 1 / 64)) < 1e-6
    clip = px_to_clip(xy, (64, 80), near=1.0, far=3.0)
    assert torch.allclose(clip[..., 3], torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(clip[0, 0, :2] / 2.0, torch.tensor([-1 + 1 / 80, 1 - 1 / 64]))


def test_custom_backend_object_is_used():
    calls = []

    class Spy:
        name = "spy"

        def visibility(self, verts_px, faces, image_size, **kw):
            calls.append(kw)
            return visibility_torch(verts_px, faces, image_size, **kw)

    vc, f, K = _scene(1)
    frags = rasterize(vc, f, K, (64, 80), backend=Spy())
    assert calls and calls[0]["cull_backfaces"] is True and int((frags.tri_id >= 0).sum()) > 100


def _agreement(name: str, device: str):
    vc, f, K = _scene(2)
    vc, f, K = vc.to(device), f.to(device), K.to(device)
    vp = project_to_px(vc, K)
    ref = visibility_torch(vp, f, (64, 80))
    other = get_backend(name).visibility(vp, f, (64, 80), cull_backfaces=True, near=1e-3, perspective=True)
    covered = (ref >= 0) | (other >= 0)
    return float((ref == other)[covered].float().mean()), int(covered.sum())


@pytest.mark.skipif(importlib.util.find_spec("pytorch3d") is None, reason="pytorch3d not installed")
def test_pytorch3d_backend_agrees_with_torch():
    agree, n = _agreement("pytorch3d", "cpu")
    assert n > 1000
    assert agree >= 0.999


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("nvdiffrast") is None or not torch.cuda.is_available(),
                    reason="nvdiffrast and CUDA needed")
def test_nvdiffrast_backend_agrees_with_torch():
    agree, n = _agreement("nvdiffrast", "cuda")
    assert n > 1000
    assert agree >= 0.999
