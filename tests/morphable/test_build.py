"""Tests of recon3d.morphable.build on a small synthetic MediaPipe cache (MediaPipe's canonical mesh
from ../shared, deformed, posed and projected; synthetic photos): the whole build runs, the model is
valid and mirror symmetric, and the held-out evaluation uses recon3d's fitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.conventions import IBUG68_MIRROR, frontal_rotation
from recon3d.morphable.build import BuildConfig, BuildData, build_model, evaluate_landmark_fit
from recon3d.morphable.build.geometry import read_obj
from recon3d.morphable.default import load_default_model

H = W = 192


def _synthetic_data(canonical: str, n: int = 24) -> BuildData:
    canon, _ = read_obj(canonical)
    rng = np.random.default_rng(1)
    dm = load_default_model()
    lm = dm.landmarks(dm.mean[None])[0].numpy().astype(np.float64) * 100.0  # metres -> MediaPipe's cm
    c0 = canon.mean(0)
    ids = np.array([int(np.argmin(((canon - p) ** 2).sum(1))) for p in lm - lm.mean(0) + c0])
    R = frontal_rotation(torch.float64).numpy()
    fields = rng.normal(size=(4, 3, 3)) * 0.03
    pts, lmk = [], []
    for _ in range(n):
        x = canon - c0
        for f in fields:
            x = x + rng.normal() * (x @ f.T) * np.exp(-(x[:, 1] / 8) ** 2)[:, None]
        a = np.radians(rng.uniform(-30, 30))
        Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        x = (x @ Ry.T) * rng.uniform(7, 8) + np.array([W / 2, -H / 2, 0])
        cam = x @ R  # model axes -> MediaPipe's camera-like pixels
        pts.append(cam / np.array([W, H, W]))
        lmk.append(cam[ids, :2] + rng.normal(size=(68, 2)) * 0.5)
    return BuildData(paths=[f"img{i:03d}.png" for i in range(n)], points=np.asarray(pts),
                     sizes=np.tile([H, W], (n, 1)), lmk68=np.asarray(lmk), groups={})


def _load_image(path: str) -> np.ndarray:
    r = np.random.default_rng(int(path[3:6]))
    yy, xx = np.mgrid[0:H, 0:W] / H
    img = np.stack([0.5 + 0.3 * xx, 0.4 + 0.2 * yy, 0.35 + 0.1 * xx * yy], -1) + r.normal(size=(H, W, 3)) * 0.02
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # all-NaN medians of never-seen vertices
def test_build_model_on_synthetic_meshes(shared_dir):
    canonical = shared_dir / "face-models" / "mediapipe-canonical" / "canonical_face_model.obj"
    if not canonical.is_file():
        pytest.skip("MediaPipe canonical mesh not in ../shared")
    data = _synthetic_data(str(canonical))
    cfg = BuildConfig(n_shape=8, n_expr=4, n_albedo=6, subdivisions=1, n_holdout=4)
    model, rep = build_model(data, canonical, config=cfg, load_image=_load_image)
    assert (model.n_shape, model.n_expr, model.n_albedo) == (8, 4, 6)
    sym = model.sym_vertex
    assert torch.equal(sym[sym], torch.arange(model.n_verts))
    m = model.mean.double()
    assert torch.allclose(m[sym] * torch.tensor([-1.0, 1, 1], dtype=torch.float64), m, atol=1e-6)
    assert model.lmk_faces[list(IBUG68_MIRROR)].tolist() != model.lmk_faces.tolist()  # left != right
    assert rep["holdout_mask"].sum() == 4 and np.isfinite(rep["embedding_rms_nme"])
    hold = rep["holdout_mask"]
    ev = evaluate_landmark_fit(model, data.lmk68[hold], n_shape=8, n_expr=4, image_sizes=data.sizes[hold])
    assert len(ev["per_image"]) == 4 and 0 < ev["nme_mean"] < 0.1 and ev["nme_mean_pose_only"] > 0


def test_read_pts_alias_is_deprecated(tmp_path):
    import recon3d.morphable.build as build
    from recon3d.io.landmarks_file import read_pts

    p = tmp_path / "a.pts"
    xy = np.arange(136, dtype=np.float64).reshape(68, 2) + 1.0
    p.write_text("version: 1\nn_points: 68\n{\n" + "\n".join(f"{x} {y}" for x, y in xy) + "\n}\n")
    with pytest.warns(DeprecationWarning, match="recon3d.io.landmarks_file.read_pts"):
        old = build.read_pts
    out = old(p)
    assert out.dtype == np.float64 and np.array_equal(out, read_pts(p).numpy())
    np.testing.assert_array_equal(out, xy - 1.0)
