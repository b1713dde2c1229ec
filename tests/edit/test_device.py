"""recon3d.edit follows the reconstruction's device and dtype, and checks its inputs' shapes.

* float64: the edits of a float64 copy of the synthetic reconstruction stay float64 (the dtype the
  torch maths runs in, see :func:`recon3d.edit._common.tensor_opts`), finite and close to float32;
* CUDA (``gpu`` marker, skipped without a GPU): the edits of a reconstruction moved to CUDA return
  tensors on CUDA matching the CPU results;
* no ``.cpu()`` / ``.numpy()`` / ``.cuda()`` call in ``recon3d/edit/*.py`` outside the one named
  numpy boundary (``_common.to_numpy``), so the rule stays true;
* ``ShapeError`` naming the function, the argument, the expected and the actual shape at the public
  entry points.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import recon3d.edit as edit_pkg
from recon3d.edit import (
    deocclude,
    detect_occlusion,
    frontalize,
    make_synthetic_reconstruction,
    rotate_face,
    rotate_views,
)
from recon3d.edit.identity import descriptor_cosine, descriptor_distance, face_descriptor
from recon3d.errors import ShapeError

EDIT_DIR = Path(edit_pkg.__file__).parent
#: (module file, function) pairs allowed to copy tensors to host memory: the numpy boundary
NUMPY_BOUNDARY = {("_common.py", "to_numpy")}
POSES = [(20.0, 0.0), (-10.0, 5.0, 3.0)]


def _convert(x, fn):
    """``fn`` applied to every tensor of a (nested, frozen) dataclass such as a Reconstruction."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.replace(x, **{f.name: _convert(getattr(x, f.name), fn) for f in dataclasses.fields(x)
                                         if f.init})
    return x


def _to(rec, device=None, dtype=None):
    return _convert(rec, lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() and dtype else t.dtype))


@pytest.fixture(scope="module")
def rec():
    return make_synthetic_reconstruction(size=120, texture_size=64)


def _edits(r):
    H, W = r.image.shape[:2]
    m = np.zeros((H, W), bool)
    m[H // 3:H // 2, W // 3:2 * W // 3] = True
    return {
        "rotate": rotate_views(r, POSES),
        "front": frontalize(r, texture="reconstruction"),
        "occ": detect_occlusion(r, cue="photometric"),
        "deocc": deocclude(r, cue="photometric"),
        "deocc_mask": deocclude(r, mask=m),
    }


@pytest.fixture(scope="module")
def cpu_edits(rec):
    return _edits(rec)


# -- float64 ---------------------------------------------------------------------------------------

def test_float64_reconstruction_stays_float64(rec, cpu_edits):
    r64 = _to(rec, dtype=torch.float64)
    # a photo that float32 cannot hold exactly: the untouched pixels must come back bit for bit
    r64 = dataclasses.replace(r64, image=r64.image + 1e-12 * torch.rand(r64.image.shape, dtype=torch.float64))
    assert not torch.equal(r64.image.float().double(), r64.image)
    out = _edits(r64)
    for a, b in zip(out["rotate"], cpu_edits["rotate"], strict=True):
        for f in ("image", "verts_cam", "verts_model", "pose_deg", "delta_deg"):
            t = getattr(a, f)
            assert t.dtype == torch.float64, f
            assert torch.isfinite(t).all(), f
            torch.testing.assert_close(t, getattr(b, f).double(), atol=1e-3, rtol=1e-4)
        assert a.mask.dtype == torch.bool and a.filled.dtype == torch.bool
    assert out["front"].image.dtype == torch.float64
    torch.testing.assert_close(out["front"].image, cpu_edits["front"].image.double(), atol=1e-3, rtol=0)
    occ = out["occ"]
    assert occ.score.dtype == torch.float32  # documented float32
    assert torch.equal(occ.face_mask, cpu_edits["occ"].face_mask)
    for key in ("deocc", "deocc_mask"):
        d, d32 = out[key], cpu_edits[key]
        for f in ("image", "rendered", "texture"):
            t = getattr(d, f)
            assert t.dtype == torch.float64 and torch.isfinite(t).all(), (key, f)
        torch.testing.assert_close(d.rendered, d32.rendered.double(), atol=1e-3, rtol=0)
        # outside the replaced pixels the photo is returned exactly
        keep = ~d.occlusion_mask
        assert torch.equal(d.image[keep], r64.image[keep])


# -- CUDA ------------------------------------------------------------------------------------------

def _close_images(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4, frac: float = 0.005) -> None:
    """Equal within ``tol`` except on at most ``frac`` of the pixels (rasterizer ties on silhouettes)."""
    bad = ((a.cpu().float() - b.float()).abs() > tol).reshape(a.shape[0], a.shape[1], -1).any(-1)
    assert bad.float().mean().item() <= frac, bad.float().mean().item()


@pytest.mark.gpu
def test_cuda_reconstruction_edits_on_cuda(rec, cpu_edits):
    rc = _to(rec, device="cuda")
    out = _edits(rc)
    for a, b in zip(out["rotate"], cpu_edits["rotate"], strict=True):
        for f in ("image", "mask", "filled", "verts_cam", "verts_model", "pose_deg", "delta_deg"):
            assert getattr(a, f).device.type == "cuda", f
        _close_images(a.image, b.image)
        torch.testing.assert_close(a.verts_cam.cpu(), b.verts_cam, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.pose_deg.cpu(), b.pose_deg, atol=1e-4, rtol=0)
    _close_images(out["front"].image, cpu_edits["front"].image)
    for f in ("face_mask", "visible_face_mask", "occlusion_mask", "score"):
        assert getattr(out["occ"], f).device.type == "cuda", f
    for key in ("deocc", "deocc_mask"):
        d, dc = out[key], cpu_edits[key]
        for f in ("image", "occlusion_mask", "face_mask", "visible_face_mask", "rendered", "texture"):
            assert getattr(d, f).device.type == "cuda", (key, f)
        _close_images(d.rendered, dc.rendered)
        _close_images(d.image, dc.image)


# -- the rule stays true -------------------------------------------------------------------------

def _host_copies(path: Path) -> list[str]:
    """``file:line function .attr()`` of every ``.cpu()`` / ``.numpy()`` / ``.cuda()`` call in ``path``
    outside :data:`NUMPY_BOUNDARY`."""
    tree = ast.parse(path.read_text())
    hits = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            f = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr in ("cpu", "numpy", "cuda") and (path.name, func) not in NUMPY_BOUNDARY):
                hits.append(f"{path.name}:{child.lineno} {func} .{child.func.attr}()")
            visit(child, f)

    visit(tree, None)
    return hits


def test_no_host_round_trips_in_edit():
    files = sorted(EDIT_DIR.glob("*.py"))
    assert len(files) >= 5
    hits = [h for p in files for h in _host_copies(p)]
    assert not hits, "tensor -> host copies outside recon3d.edit._common.to_numpy:\n" + "\n".join(hits)


def test_host_copy_scanner_finds_calls(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("def f(t):\n    return t.detach().cpu().numpy()\n")
    assert len(_host_copies(p)) == 2


# -- shapes at the entry points ------------------------------------------------------------------

def test_rotate_views_poses_shape(rec):
    with pytest.raises(ShapeError, match=r"rotate_views\(\): poses must be \(N, 2\) or \(N, 3\).*got \(2, 4\)"):
        rotate_views(rec, np.zeros((2, 4)))
    with pytest.raises(ShapeError, match=r"rotate_views\(\): poses must be \(N, P\), got \(3,\)"):
        rotate_views(rec, torch.zeros(3))
    with pytest.raises(ShapeError, match=r"rotate_views\(\): poses\[1\] must be \(2,\) or \(3,\).*got \(4,\)"):
        rotate_views(rec, [(1.0, 2.0), (1.0, 2.0, 3.0, 4.0)])


def test_rotate_views_accepts_pose_arrays(rec, cpu_edits):
    for poses in (np.array([[20.0, 0.0, 0.0]]), torch.tensor([[20.0, 0.0]])):
        r = rotate_views(rec, poses)[0]
        assert torch.equal(r.image, cpu_edits["rotate"][0].image)


def test_deocclude_mask_shape(rec):
    H, W = rec.image.shape[:2]
    with pytest.raises(ShapeError, match=rf"deocclude\(\): mask must be \(H, W\) with H={H} .*got \({H + 1}, {W}\)"):
        deocclude(rec, mask=np.zeros((H + 1, W), bool))
    with pytest.raises(ShapeError, match=rf"deocclude\(\): mask must be \(H, W\), got \(1, {H}, {W}\)"):
        deocclude(rec, mask=torch.zeros(1, H, W, dtype=torch.bool))
    with pytest.raises(ShapeError, match=rf"deocclude\(\): mask must be \(H, W, C\) with W={W} .*got \({H}, {W - 1}, 1\)"):
        deocclude(rec, mask=np.zeros((H, W - 1, 1)))


@pytest.mark.parametrize("fn", [rotate_face, frontalize, detect_occlusion, deocclude])
def test_reconstruction_shapes_checked(rec, fn):
    name = fn.__name__
    bad = dataclasses.replace(rec, image=rec.image[..., :2])
    with pytest.raises(ShapeError, match=rf"{name}\(\): rec.image must be \(H, W, 3\), got \(120, 120, 2\)"):
        fn(bad)
    bad = dataclasses.replace(rec, verts_model=rec.verts_model[:-1])
    with pytest.raises(ShapeError, match=rf"{name}\(\): rec.model.mean must be \(V, 3\) with V="):
        fn(bad)
    with pytest.raises(TypeError, match="Reconstruction"):
        fn(object())


def test_face_descriptor_shapes():
    img = np.zeros((40, 40, 3), np.float32)
    with pytest.raises(ShapeError, match=r"face_descriptor\(\): image must be \(H, W, C\), got \(40, 40\)"):
        face_descriptor(img[..., 0])
    with pytest.raises(ShapeError, match=r"face_descriptor\(\): image must be \(H, W, 3\).*got \(40, 40, 2\)"):
        face_descriptor(img[..., :2])
    with pytest.raises(ShapeError, match=r"face_descriptor\(\): lmk_px must be \(68, 2\), got \(67, 2\)"):
        face_descriptor(img, lmk_px=torch.zeros(67, 2))
    with pytest.raises(ShapeError, match=r"face_descriptor\(\): box must be \(4\), got \(3,\)"):
        face_descriptor(img, box=[0, 0, 10])


def test_descriptor_metric_shapes():
    with pytest.raises(ShapeError, match=r"descriptor_distance\(\): b must be \(D\) with D=128"):
        descriptor_distance(np.zeros(128), np.zeros(127))
    with pytest.raises(ShapeError, match=r"descriptor_cosine\(\): a must be \(D\), got \(2, 128\)"):
        descriptor_cosine(np.zeros((2, 128)), np.zeros(128))
