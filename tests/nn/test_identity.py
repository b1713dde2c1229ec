"""recon3d.nn.identity: the dlib .dat parser, the PyTorch port of dlib's face recognition ResNet, dlib's
face chip (transform and differentiable extraction), the safetensors copy; plus the losses built on it
(recon3d.train.losses). dlib itself is the reference wherever it is importable."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from recon3d.errors import AssetError, ShapeError
from recon3d.nn.face_chip import _CHIP_POINTS_68, _MEAN_FACE_X, _MEAN_FACE_Y
from recon3d.nn.identity import (
    IdentityNet,
    convert_dlib_dat,
    dlib_identity_dat_path,
    extract_chip,
    face_chip_transform,
    load_identity_net,
    read_dlib_dat,
)


@pytest.fixture(scope="module")
def dat():
    try:
        return dlib_identity_dat_path()
    except AssetError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def net(dat):
    return load_identity_net()


@pytest.fixture(scope="module")
def dlib():
    return pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def dlib_rec(dlib, dat):
    return dlib.face_recognition_model_v1(str(dat))


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB with structure at several scales (so the pyramid and the sampling matter)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3))
    for cell in (4, 16, 64):
        g = rng.random((h // cell + 2, w // cell + 2, 3))
        img += np.kron(g, np.ones((cell, cell, 1)))[:h, :w]
    return np.ascontiguousarray((img / 3 * 255).astype(np.uint8))


def _face_points(scale: float, angle: float, centre) -> np.ndarray:
    """dlib's mean face (landmarks 17..67; 0..16 placed on a jaw arc) rotated, scaled and moved."""
    pts = np.zeros((68, 2))
    pts[17:] = np.stack([_MEAN_FACE_X, _MEAN_FACE_Y], 1)
    t = np.linspace(np.pi, 2 * np.pi, 17)
    pts[:17] = np.stack([0.5 - 0.5 * np.cos(t), 0.2 - 0.8 * np.sin(t)], 1)
    c, s = np.cos(angle), np.sin(angle)
    return (pts - 0.5) @ (scale * np.array([[c, s], [-s, c]])) + centre


def _dlib_shape(dlib, pts):
    rect = dlib.rectangle(*[int(v) for v in (*pts.min(0), *pts.max(0))])
    return dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in pts])


def _to_tensor(img_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img_u8.copy()).permute(2, 0, 1)[None].float() / 255.0


def test_parser_reads_the_installed_dat(dat):
    recs = read_dlib_dat(dat)
    assert len(recs) == 110 and recs[0].kind == "loss_metric" and recs[1].kind == "input_rgb_image_sized"
    assert recs[0].config["distance_threshold"] == pytest.approx(0.6)
    assert recs[1].config["mean_rgb"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert (recs[1].config["nr"], recs[1].config["nc"], recs[1].config["n_tags"]) == (150, 150, 22)
    kinds = Counter(r.kind for r in recs[2:])
    assert kinds == {"con": 29, "affine": 29, "relu": 29, "add_prev": 14, "avg_pool": 5, "max_pool": 1, "fc": 1}
    assert sum(a.size for r in recs for a in r.params.values()) == 5_614_592
    assert sum(p.numel() for p in IdentityNet().parameters()) == 5_614_592


def test_corrupt_truncated_or_missing_dat_is_an_asset_error(dat, tmp_path):
    data = dat.read_bytes()
    cases = {"truncated": data[: len(data) // 2], "garbage": bytes(range(256)) * 100, "empty": b"",
             "flipped": data[:336] + b"\x7f" + data[337:], "trailing": data + b"\x00"}
    for name, blob in cases.items():
        p = tmp_path / f"{name}.dat"
        p.write_bytes(blob)
        with pytest.raises(AssetError) as e:
            load_identity_net(p, cached=False)
        assert "\n" not in str(e.value) and str(p) in str(e.value), name
    with pytest.raises(AssetError, match="cannot read"):
        read_dlib_dat(tmp_path / "missing.dat")


def test_descriptor_matches_dlib_on_a_chip(net, dlib_rec):
    chips = [_smooth_image(150, 150, seed) for seed in range(2)]
    with torch.no_grad():
        ours = net(torch.cat([_to_tensor(c) for c in chips])).double().numpy()
    theirs = np.array([np.asarray(dlib_rec.compute_face_descriptor(c)) for c in chips])
    assert ours.shape == (2, 128)
    assert np.linalg.norm(ours - theirs, axis=1).max() < 1e-5


@pytest.mark.parametrize("scale,angle", [(120.0, 0.15), (330.0, -0.3), (640.0, 0.05)])  # pyramid depth 0, 1, 2
def test_chip_and_descriptor_match_dlib(dlib, dlib_rec, net, scale, angle):
    img = _smooth_image(900, 800, seed=3)
    pts = np.round(_face_points(scale, angle, (402.3, 455.8)))
    shape = _dlib_shape(dlib, pts)
    m = face_chip_transform(pts)
    ref = np.asarray(dlib.get_face_chip(img, shape, 150, 0.25)).astype(float)
    x = _to_tensor(img)
    ours_q = extract_chip(x, m[None], quantize=True)[0].permute(1, 2, 0).numpy() * 255
    ours_f = extract_chip(x, m[None])[0].permute(1, 2, 0).numpy() * 255
    dq, df = np.abs(ours_q - ref), np.abs(ours_f - ref)
    assert dq.max() <= 1.0 + 1e-3 and dq.mean() < 0.01  # 8-bit quantised: dlib's chip to the last bit
    assert df.max() < 3.0 and df.mean() < 1.5  # float (differentiable): dlib truncates each 8-bit step
    with torch.no_grad():
        d = net(torch.from_numpy(np.round(ours_q)).permute(2, 0, 1)[None].float() / 255)[0].double().numpy()
    assert np.linalg.norm(d - np.asarray(dlib_rec.compute_face_descriptor(img, shape))) < 1e-3


def test_five_point_chip_matches_dlib(dlib):
    from recon3d.nn.face_chip import _TEMPLATE_5

    img = _smooth_image(400, 420, seed=4)
    c, s = np.cos(0.2), np.sin(0.2)
    pts = np.round((np.array(_TEMPLATE_5) - 0.5) @ (150 * np.array([[c, s], [-s, c]])) + (205.0, 190.0))
    shape = dlib.full_object_detection(dlib.rectangle(100, 100, 300, 300), [dlib.point(int(x), int(y)) for x, y in pts])
    ref = np.asarray(dlib.get_face_chip(img, shape, 150, 0.25)).astype(float)
    ours = extract_chip(_to_tensor(img), face_chip_transform(pts)[None], quantize=True)[0].permute(1, 2, 0).numpy()
    d = np.abs(ours * 255 - ref)
    assert d.max() <= 1.0 + 1e-3 and d.mean() < 0.01


def test_chip_transform_of_the_template_is_the_template():
    pts = _face_points(150 / 1.5, 0.0, (75.0, 75.0))  # the template at padding 0.25 fills a 150 px chip
    m = face_chip_transform(pts)
    uv = np.c_[np.stack([_MEAN_FACE_X, _MEAN_FACE_Y], 1) * 100 + 25, np.ones(51)]
    idx = np.subtract(_CHIP_POINTS_68, 17)
    # dlib's chip pixel u samples image x = u + 0.5 here: its rectangle centre, the image of chip point
    # (75, 75), is chip pixel 74.5 (the corners, pixels 0 and 149, lie 150 s - 1 apart)
    np.testing.assert_allclose((uv @ m.T)[idx], pts[17:][idx] + 0.5, atol=1e-9)
    assert face_chip_transform(np.stack([pts, pts])).shape == (2, 2, 3)
    with pytest.raises(ShapeError, match="68, 2"):
        face_chip_transform(np.zeros((10, 2)))
    with pytest.raises(ShapeError, match="matrices"):
        extract_chip(torch.zeros(1, 3, 20, 20), np.zeros((2, 2, 3)))


def test_gradients_flow_through_chip_net_and_losses(net):
    from recon3d.train.losses import feature_matching_loss, identity_loss

    frozen = load_identity_net(cached=False).requires_grad_(False)  # a private copy: backward leaves net alone
    img = _to_tensor(_smooth_image(200, 180, seed=5)).requires_grad_(True)
    m = face_chip_transform(_face_points(110.0, 0.1, (90.0, 100.0)))[None]
    target = _to_tensor(_smooth_image(150, 150, seed=6))
    loss = identity_loss(frozen, img, target, matrices_a=m) + feature_matching_loss(frozen, img, target, matrices_a=m)
    assert loss.shape == (1,)
    loss.sum().backward()
    g = img.grad
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    chips = torch.rand(2, 3, 150, 150)
    with torch.no_grad():
        assert identity_loss(net, chips, chips).abs().max() < 1e-5
        assert identity_loss(net, chips, chips.flip(0), metric="cosine").min() > 0
        assert feature_matching_loss(net, chips, chips).abs().max() == 0
    with pytest.raises(ShapeError, match="chips"):
        identity_loss(net, torch.rand(1, 3, 64, 64), chips[:1])
    with pytest.raises(ValueError, match="weights"):
        feature_matching_loss(net, chips, chips, weights=[1.0])


def test_safetensors_copy_round_trips_and_is_cached(net, dat, tmp_path):
    from recon3d._cache import cache_keys

    p = tmp_path / "identity.safetensors"
    convert_dlib_dat(p, dat)
    copy = load_identity_net(p, cached=False)
    x = torch.rand(1, 3, 150, 150)
    with torch.no_grad():
        assert torch.equal(copy(x), net(x))
    assert load_identity_net() is net and ("nn", "identity", "None", "None") in cache_keys()
    assert [f.shape[1] for f in net.features(x)] == [32, 32, 64, 128, 256, 256]


@pytest.mark.shared
def test_descriptor_matches_dlib_on_a_real_face(shared_dir, dlib, dlib_rec, net):
    from PIL import Image

    from recon3d.detect.dlib_backend import dlib_model_path

    files = sorted((shared_dir / "300w" / "helen_testset").glob("*.jpg"))
    if not files:
        pytest.skip("no 300W helen_testset images in the shared data")
    img = np.ascontiguousarray(np.asarray(Image.open(files[0]).convert("RGB")))
    faces = dlib.get_frontal_face_detector()(img, 1)
    assert faces
    shape = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))(img, faces[0])
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=float)
    chip = extract_chip(_to_tensor(img), face_chip_transform(pts)[None], quantize=True)
    with torch.no_grad():
        d = net(chip)[0].double().numpy()
    assert np.linalg.norm(d - np.asarray(dlib_rec.compute_face_descriptor(img, shape))) < 1e-3
