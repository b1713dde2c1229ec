"""Tests of render_mesh / MeshRenderer: golden renders, conventions, module = function."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from recon3d.camera import intrinsics_from_fov, pose_angles_to_matrix, transform_points
from recon3d.errors import ShapeError
from recon3d.render import MeshRenderer, RenderOutput, ambient_light, render_mesh

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
SIZE = (64, 64)


def _icosphere(subdiv=3):
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    return torch.tensor(m.vertices, dtype=torch.float32) * 0.1, torch.tensor(m.faces, dtype=torch.int64)


def _light():
    light = ambient_light(1) * 0.7
    light[0, 2] = torch.tensor([0.5, 0.45, 0.4])  # from the viewer (+z in the OpenGL camera frame)
    light[0, 3] = -0.3  # -a1 c1 nx term: brighter towards +x (image right)
    light[0, 1] = -0.2  # -a1 c1 ny term: brighter towards +y (image up)
    return light


def _scene_lit_sphere():
    v, f = _icosphere(3)
    R = pose_angles_to_matrix(torch.tensor([[0.4, 0.2, 0.1]]))
    vc = transform_points(v[None] * torch.tensor([1.0, 1.2, 0.9]), R, torch.tensor([[0.0, 0.0, 0.5]]))
    col = (v * 4 + 0.5).clamp(0, 1)
    out = render_mesh(vc, f, intrinsics_from_fov(35.0, SIZE), SIZE, vert_colors=col, light=_light(), background=0.15)
    return out.image[0]


def _scene_textured_quad():
    v = torch.tensor([[-0.1, -0.1, 0.0], [0.1, -0.1, 0.0], [0.1, 0.1, 0.0], [-0.1, 0.1, 0.0]])
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])  # CCW seen from +z (model front)
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    tex = torch.stack([((rows // 2 + cols // 2) % 2).float(), cols / 15.0, 1 - rows / 15.0], -1)[None]
    R = pose_angles_to_matrix(torch.tensor([[0.6, -0.3, 0.2]]))
    vc = transform_points(v[None], R, torch.tensor([[0.0, 0.0, 0.45]]))
    out = render_mesh(vc, f, intrinsics_from_fov(40.0, SIZE), SIZE, texture_map=(uv, f, tex), background=torch.tensor([0.0, 0.0, 0.3]))
    return out.image[0]


def _scene_silhouette():
    v, f = _icosphere(2)
    R = pose_angles_to_matrix(torch.tensor([[0.2, 0.5, 0.3]]))
    vc = transform_points(v[None] * torch.tensor([1.4, 0.6, 0.8]), R, torch.tensor([[0.01, -0.005, 0.5]]))
    out = render_mesh(vc, f, intrinsics_from_fov(35.0, SIZE), SIZE)
    return out.mask[0].expand(*SIZE, 3)


SCENES = {"lit_sphere": _scene_lit_sphere, "textured_quad": _scene_textured_quad, "silhouette": _scene_silhouette}


def _to_png(img: torch.Tensor) -> np.ndarray:
    return (img.detach().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(SCENES))
def test_golden_render(name, tmp_path):
    with torch.no_grad():
        img = SCENES[name]().clamp(0, 1)
    path = GOLDEN / f"render_{name}.png"
    if os.environ.get("RECON3D_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_to_png(img)).save(path)
    if not path.exists():
        pytest.fail(f"golden image {path} is missing; run with RECON3D_UPDATE_GOLDEN=1 to create it")
    ref = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).float() / 255
    assert ref.shape == img.shape
    diff = (img - ref).abs()
    mean_abs = float(diff.mean())
    frac_bad = float((diff.amax(-1) > 0.05).float().mean())
    if mean_abs > 1 / 255 or frac_bad > 0.005:
        Image.fromarray(_to_png(img)).save(tmp_path / f"{name}_actual.png")
        Image.fromarray(_to_png((diff * 4).clamp(0, 1))).save(tmp_path / f"{name}_diff.png")
        pytest.fail(f"{name}: mean |diff| {mean_abs:.4f}, {frac_bad:.2%} of pixels > 0.05; actual and diff in {tmp_path}")


def test_render_output_fields_and_conventions():
    """Frontal camera (pose_angles_to_matrix(0)): a sphere offset to model +X lands right of the
    image centre, one offset to model +Y in the upper half."""
    v, f = _icosphere(2)
    R = pose_angles_to_matrix(torch.zeros(1, 3))
    K = intrinsics_from_fov(40.0, SIZE)
    for offset, check in (([0.08, 0.0, 0.0], "right"), ([0.0, 0.08, 0.0], "up")):
        vm = v[None] * 0.3 + torch.tensor(offset)
        out = render_mesh(transform_points(vm, R, torch.tensor([[0.0, 0.0, 0.5]])), f, K, SIZE)
        assert isinstance(out, RenderOutput)
        assert out.image.shape == (1, 64, 64, 3) and out.mask.shape == (1, 64, 64, 1)
        assert out.depth.shape == (1, 64, 64) and out.tri_id.dtype == torch.int64
        rows, cols = (out.tri_id[0] >= 0).nonzero(as_tuple=True)
        c = (64 - 1) / 2
        if check == "right":
            assert float(cols.float().mean()) > c + 5 and abs(float(rows.float().mean()) - c) < 1
        else:
            assert float(rows.float().mean()) < c - 5 and abs(float(cols.float().mean()) - c) < 1
        # depth: camera z of the near side of the sphere, 0 in the background
        assert float(out.depth[out.tri_id >= 0].min()) == pytest.approx(0.5 - 0.03, abs=2e-3)
        assert float(out.depth[out.tri_id < 0].abs().max()) == 0.0


def test_background_options_and_unlit_white():
    v, f = _icosphere(1)
    vc = v[None] + torch.tensor([0.0, 0.0, 0.5])
    K = intrinsics_from_fov(40.0, SIZE)
    out = render_mesh(vc, f, K, SIZE, background=torch.tensor([0.1, 0.2, 0.3]), antialias=False)
    assert torch.allclose(out.image[0, 0, 0], torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(out.image[0, 32, 32], torch.ones(3))
    bg_img = torch.rand(1, 64, 64, 3)
    out = render_mesh(vc, f, K, SIZE, background=bg_img)
    assert torch.equal(out.image[0, 0, 0], bg_img[0, 0, 0])
    with pytest.raises(ShapeError, match="background"):
        render_mesh(vc, f, K, SIZE, background=torch.zeros(5))
    with pytest.raises(ValueError, match="not both"):
        render_mesh(vc, f, K, SIZE, vert_colors=torch.ones(len(v), 3), texture_map=(torch.zeros(len(v), 2), f, torch.ones(1, 2, 2, 3)))


def test_module_matches_function_and_tuple_texture():
    v, f = _icosphere(2)
    B = 2
    vc = v[None].repeat(B, 1, 1) + torch.tensor([[0.0, 0.0, 0.5], [0.02, 0.0, 0.55]])[:, None]
    K = intrinsics_from_fov(40.0, SIZE, batch=B)
    uv = (v[:, :2] / 0.2 + 0.5).clamp(0, 1)
    tex = torch.rand(1, 8, 8, 3, generator=torch.Generator().manual_seed(0))
    light = _light().repeat(B, 1, 1)
    mod = MeshRenderer(f, SIZE, uv_faces=f)
    a = mod(vc, K, uv=uv, tex=tex, light=light)
    b = render_mesh(vc, f, K, SIZE, texture_map=(uv, f, tex), light=light)
    c = render_mesh(vc, f, K, SIZE, vert_colors=(uv, f, tex), light=light)
    assert torch.allclose(a.image, b.image) and torch.allclose(b.image, c.image)
    assert torch.equal(a.tri_id, b.tri_id) and torch.allclose(a.mask, b.mask)
    assert not torch.allclose(a.image[0], a.image[1])


def test_render_gradients_reach_all_inputs():
    v, f = _icosphere(2)
    vc = (v[None] + torch.tensor([0.0, 0.0, 0.5])).requires_grad_()
    col = torch.full((len(v), 3), 0.5, requires_grad=True)
    light = _light().requires_grad_()
    out = render_mesh(vc, f, intrinsics_from_fov(40.0, SIZE), SIZE, vert_colors=col, light=light)
    (out.image.sum() + out.mask.sum()).backward()
    for t in (vc, col, light):
        assert t.grad is not None and float(t.grad.abs().sum()) > 0


def test_batched_render_equals_single_renders():
    v, f = _icosphere(2)
    vc = torch.stack([v + torch.tensor([0.0, 0.0, 0.5]), v * 1.2 + torch.tensor([0.03, -0.02, 0.6])])
    K = intrinsics_from_fov(40.0, SIZE, batch=2)
    col = (v * 4 + 0.5).clamp(0, 1)
    both = render_mesh(vc, f, K, SIZE, vert_colors=col, light=_light().repeat(2, 1, 1))
    for b in range(2):
        one = render_mesh(vc[b:b + 1], f, K[b:b + 1], SIZE, vert_colors=col, light=_light())
        assert torch.allclose(both.image[b], one.image[0], atol=1e-6)
        assert torch.allclose(both.mask[b], one.mask[0], atol=1e-6)
