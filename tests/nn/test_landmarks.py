"""recon3d's landmark regressor: view synthesis, training, shipped weights, the ``recon3d`` backend."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import skimage.data as skimage_data  # noqa: E402  (scikit-image is a core dependency: no skip)
import torch


@pytest.fixture(scope="module")
def astronaut_lmk():
    """The astronaut photo (float [0, 1]) and dlib's 68 landmarks for it."""
    from recon3d.detect import detect_landmarks

    img = skimage_data.astronaut().astype(np.float32) / 255.0
    det = detect_landmarks(torch.from_numpy(img), backend="dlib")
    return img, det.lmk_px.numpy().astype(np.float64)


@pytest.fixture(scope="module")
def model():
    from recon3d.morphable.default import load_default_model

    return load_default_model()


# ------------------------------------------------------------------------------------------------
# synthesis
# ------------------------------------------------------------------------------------------------
def test_source_view_reproduces_annotation(astronaut_lmk, model):
    """At the photo's own pose and without crop jitter, the labels map back onto the annotation
    (the annotation offsets are lifted to 3-D and rotated by the identity)."""
    from recon3d.data.poses import synthesize_views

    img, lmk = astronaut_lmk
    v = synthesize_views(img, lmk, model, np.zeros((0, 3)), size=128, center_jitter=0, scale_jitter=0,
                         include_source=True)
    assert v.images.shape == (1, 128, 128, 3) and v.images.dtype == np.uint8
    box = v.box[0].astype(np.float64)
    side = box[2] - box[0]
    back = box[:2] + (v.lmk[0] + 0.5) * side / 128 - 0.5
    # the photo is downscaled before rendering (box filter), so allow a fraction of a pixel
    err = np.linalg.norm(back - lmk, axis=1)
    assert err[17:].max() < 1.0, err[17:].max()
    np.testing.assert_allclose(v.pose_deg[0], v.source_pose_deg, atol=1e-3)
    # the rendered crop resembles the photo's own crop (same content, small resampling error)
    from recon3d.nn.landmarks import INPUT_SIZE, STORED_SIZE
    from recon3d.ops.crop import crop_square_resized

    x, _ = crop_square_resized(torch.from_numpy(img), box, STORED_SIZE, INPUT_SIZE)
    ref = x[0].permute(1, 2, 0).numpy()  # central 112 of the 128 crop
    ours = v.images[0, 8:120, 8:120].astype(np.float32) / 255.0
    assert np.abs(ours - ref).mean() < 0.06


def test_yaw_moves_landmarks_the_right_way(astronaut_lmk, model):
    """Turning the head to positive yaw (the subject's left, see conventions) moves the nose tip
    towards the image side of the subject's left cheek and narrows the far half of the face."""
    from recon3d.data.poses import synthesize_views

    img, lmk = astronaut_lmk
    v = synthesize_views(img, lmk, model, np.array([[0.0, 0, 0], [60.0, 0, 0], [-60.0, 0, 0]]), size=96,
                         center_jitter=0, scale_jitter=0)
    assert v.images.shape == (3, 96, 96, 3)
    assert np.isfinite(v.lmk).all() and np.isfinite(v.lmk_z).all()

    def rel_nose(k):  # nose tip relative to the outer eye corners, in units of their distance
        l36, l45 = v.lmk[k, 36], v.lmk[k, 45]
        return (v.lmk[k, 30, 0] - (l36[0] + l45[0]) / 2) / abs(l45[0] - l36[0])

    assert abs(rel_nose(0)) < 0.15
    assert rel_nose(1) * rel_nose(2) < 0  # opposite sides
    assert abs(rel_nose(1)) > 0.3 and abs(rel_nose(2)) > 0.3
    # depth: at +-60 degrees one eye is clearly further away than the other, with opposite signs
    dz1 = v.lmk_z[1, 36] - v.lmk_z[1, 45]
    dz2 = v.lmk_z[2, 36] - v.lmk_z[2, 45]
    assert dz1 * dz2 < 0 and min(abs(dz1), abs(dz2)) > 5


def test_sample_poses_ranges():
    from recon3d.data.poses import sample_poses

    p = sample_poses(np.random.default_rng(1), 2000, max_yaw=90)
    assert np.abs(p[:, 0]).max() <= 90 and np.abs(p[:, 1]).max() <= 30 + 1e-9
    assert (np.abs(p[:, 0]) > 60).mean() > 0.25  # profiles are well represented
    assert np.array_equal(p, sample_poses(np.random.default_rng(1), 2000, max_yaw=90))


# ------------------------------------------------------------------------------------------------
# network and training
# ------------------------------------------------------------------------------------------------
def test_encode_decode_roundtrip():
    from recon3d.nn.landmarks import decode, encode_targets

    g = torch.Generator().manual_seed(0)
    lmk = torch.rand(3, 68, 2, generator=g) * 111
    z = torch.randn(3, 68, generator=g) * 10
    pose = torch.randn(3, 3, generator=g) * 40
    xy, z2, p2 = decode(encode_targets(lmk, z, pose))
    torch.testing.assert_close(xy, lmk)
    torch.testing.assert_close(z2, z)
    torch.testing.assert_close(p2, pose)


def test_flip_augmentation_is_consistent():
    """A flipped sample's landmarks land on the flipped image features (identity swap + x mirror)."""
    from recon3d.data.landmark_set import augment_batch

    img = np.zeros((1, 128, 128, 3), np.uint8)
    lmk = np.tile(np.array([[40.0, 50.0]], np.float32), (1, 68, 1))
    lmk[0, 36] = (30.0, 50.0)  # a right-eye corner marked by a bright pixel
    img[0, 50, 30] = 255
    torch.manual_seed(0)
    for seed in range(8):
        gen = torch.Generator().manual_seed(seed)
        x, lm, _, pose = augment_batch(torch.from_numpy(img), torch.from_numpy(lmk), torch.zeros(1, 68),
                                       torch.tensor([[30.0, 5.0, 10.0]]), gen, photometric=False)
        # the landmark whose position holds the bright pixel
        k = 36 if pose[0, 0] > 0 else 45
        xx, yy = lm[0, k].round().long().tolist()
        ch = x[0].mean(0)
        assert ch[yy, xx] > ch.mean() + 2.0, (seed, k)
        if pose[0, 0] < 0:
            assert pose[0, 2] < 0 and pose[0, 1] > 0


def _write_tiny_set(root, astronaut_lmk, model, n_views=12):
    from recon3d.data.landmark_set import save_views
    from recon3d.data.poses import sample_poses, synthesize_views

    img, lmk = astronaut_lmk
    (root / "samples").mkdir(parents=True)
    keys = []
    for i, flip in enumerate((False, True)):
        im, lm = img, lmk
        if flip:  # a second "photo": the mirrored astronaut
            from recon3d.conventions import IBUG68_MIRROR

            im = img[:, ::-1].copy()
            lm = lmk[list(IBUG68_MIRROR)].copy()
            lm[:, 0] = img.shape[1] - 1 - lm[:, 0]
        v = synthesize_views(im, lm, model, sample_poses(np.random.default_rng(i), n_views), size=128, seed=i)
        key = f"tiny__{i}"
        save_views(root / "samples" / f"{key}.npz", v)
        keys.append(key)
    (root / "train.txt").write_text("\n".join(keys) + "\n")
    (root / "val.txt").write_text(keys[1] + "\n")


def test_training_loss_decreases_and_resumes(tmp_path, astronaut_lmk, model):
    from recon3d.nn.landmarks import LandmarkNet, load_regressor_net, save_regressor
    from recon3d.train.recipes.landmarks import TrainConfig, train

    _write_tiny_set(tmp_path / "set", astronaut_lmk, model)
    torch.manual_seed(0)
    net = LandmarkNet(width=(8, 12, 16, 24, 32), hidden=64)
    cfg = TrainConfig(epochs=8, batch=8, lr=3e-3, warmup_steps=5)
    logs = []
    net, hist = train(tmp_path / "set", tmp_path / "run", cfg, net=net, log_fn=logs.append)
    assert len(hist) == 8
    assert np.mean([h["train_loss"] for h in hist[-2:]]) < 0.85 * hist[0]["train_loss"], [h["train_loss"] for h in hist]
    assert np.isfinite(hist[-1]["val_nme"])
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["epoch"] == 8
    # the checkpoint loads without code execution and resuming at the end does nothing more
    st = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert int(st["epoch"]) == 8
    net2, hist2 = train(tmp_path / "set", tmp_path / "run", cfg, net=LandmarkNet(width=(8, 12, 16, 24, 32), hidden=64))
    assert hist2 == []
    # stopped inside an epoch (step 10 of 24, 3 steps per epoch) and resumed: the same weights as one run
    torch.manual_seed(0)
    part = LandmarkNet(width=(8, 12, 16, 24, 32), hidden=64)
    train(tmp_path / "set", tmp_path / "run2", replace(cfg, max_steps=10), net=part)
    assert int(torch.load(tmp_path / "run2" / "last.pt", weights_only=True)["step_in_epoch"]) == 1
    net4, _ = train(tmp_path / "set", tmp_path / "run2", cfg, net=LandmarkNet(width=(8, 12, 16, 24, 32), hidden=64))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in net4.state_dict().items())
    # export / import round trip (fp16) gives the same predictions up to half precision
    save_regressor(net2, tmp_path / "w.safetensors", meta={"note": "test"})
    net3, meta = load_regressor_net(tmp_path / "w.safetensors")
    assert meta == {"note": "test"}
    x = torch.randn(2, 3, 112, 112)
    torch.testing.assert_close(net3(x), net2.eval()(x), atol=2e-2, rtol=0)


def test_bad_weight_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    from recon3d.errors import AssetError
    from recon3d.nn.landmarks import load_regressor_net

    with pytest.raises(AssetError, match="not found"):
        load_regressor_net(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(AssetError, match="not a safetensors"):
        load_regressor_net(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "something-else"})
    with pytest.raises(AssetError, match="not a recon3d landmark regressor"):
        load_regressor_net(tmp_path / "other.safetensors")


def test_synthesize_cli_refuses_test_set(tmp_path, capsys):
    from pipelines.synthesize_poses import main

    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "aflw2000-3d-dev"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "test set" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# shipped weights and the recon3d backend
# ------------------------------------------------------------------------------------------------
def _versions():
    from recon3d.nn.landmarks import REGRESSOR_VERSIONS

    return sorted(REGRESSOR_VERSIONS.items())


def test_default_is_a_shipped_version():
    from recon3d.nn.landmarks import REGRESSOR_ASSET, REGRESSOR_VERSIONS

    assert REGRESSOR_ASSET in REGRESSOR_VERSIONS.values()


@pytest.mark.parametrize("version,asset", _versions())
def test_shipped_weights_load_safely(version, asset):
    from safetensors import safe_open

    from recon3d.assets import manifest, resolve
    from recon3d.nn.landmarks import FORMAT, load_regressor_net

    p = resolve(asset)  # checks the manifest's sha256
    entry = manifest()[asset]
    assert entry["bytes"] == p.stat().st_size <= 15 * 2**20
    with safe_open(str(p), framework="pt") as f:
        assert f.metadata()["format"] == FORMAT
    net, meta = load_regressor_net(p)
    assert "300-W" in meta["licence"] and "non-commercial" in entry["licence"]
    xy, z, pose = net.predict(torch.zeros(1, 3, 112, 112))
    assert xy.shape == (1, 68, 2) and z.shape == (1, 68) and pose.shape == (1, 3)
    assert torch.isfinite(xy).all() and torch.isfinite(pose).all()


@pytest.mark.parametrize("version,asset", _versions())
def test_shipped_weights_reproduce_recorded_dev_nme(shared_dir, version, asset):
    """The manifest records the regressor-only NME on a fixed AFLW2000-3D dev subset (first N
    images, crop box from the ground truth); each shipped file must reproduce it within 0.05 %."""
    import scipy.io as sio

    from recon3d.assets import manifest
    from recon3d.io import load_image
    from recon3d.nn.landmarks import load_regressor
    from recon3d.train.recipes.landmarks import evaluate_photos

    check = manifest()[asset]["dev_check"]
    d = shared_dir / "aflw2000-3d-dev"
    imgs = sorted(d.glob("*.jpg"))[: check["n_images"]]
    if len(imgs) < check["n_images"]:
        pytest.skip(f"{d} has fewer than {check['n_images']} images")
    photos = [(load_image(p).image.numpy(), sio.loadmat(p.with_suffix(".mat"))["pt3d_68"][:2].T) for p in imgs]
    nme = evaluate_photos(load_regressor(version), photos)
    assert abs(float(nme.mean()) * 100 - check["nme_percent"]) < 0.05, (float(nme.mean()) * 100, check)


def test_recon3d_backend_on_astronaut(astronaut_lmk):
    from recon3d.detect import detect_faces
    from recon3d.train.recipes.landmarks import nme_per_image

    img, lmk_dlib = astronaut_lmk
    dets = detect_faces(torch.from_numpy(img), backend="recon3d")
    assert len(dets) == 1
    d = dets[0]
    assert d.landmarks_3d and d.method.endswith("+recon3d") and d.pose_deg.shape == (3,)
    # a frontal face: both backends agree closely on the inner landmarks (eyes, nose, mouth)
    inner = slice(17, 68)
    e = nme_per_image(d.lmk_px.numpy()[None, inner].astype(np.float64), lmk_dlib[None, inner])[0]
    assert e < 0.05, e
    assert abs(float(d.pose_deg[0])) < 30


def test_reconstruct_with_recon3d_backend_uses_fixed_jaw(astronaut_lmk):
    from recon3d.reconstruct import ReconstructConfig, reconstruct

    img, _ = astronaut_lmk
    cfg = ReconstructConfig(photometric=False, texture_size=128, detector="recon3d")
    rec = reconstruct(torch.from_numpy(img), config=cfg)
    assert rec.detection_method.endswith("+recon3d")
    assert rec.fit.contour_idx is None  # static jaw embedding, no sliding contour
    cfg2 = ReconstructConfig(photometric=False, texture_size=128, detector="dlib")
    assert reconstruct(torch.from_numpy(img), config=cfg2).fit.contour_idx is not None


def test_flip_test_is_mirror_consistent(astronaut_lmk):
    """With the flip test the prediction for a mirrored photo is the mirrored prediction (up to
    the integer crop placement); without it the two differ more."""
    from recon3d.conventions import IBUG68_MIRROR
    from recon3d.nn.landmarks import load_regressor
    from recon3d.ops.crop import crop_box_from_landmarks

    img, lmk = astronaut_lmk
    W = img.shape[1]
    box = crop_box_from_landmarks(lmk)
    mbox = np.array([W - 1 - box[2], box[1], W - 1 - box[0], box[3]])
    errs = []
    for flip in (True, False):
        reg = load_regressor(flip_test=flip)
        a = reg(img, box).lmk_px
        b = reg(np.ascontiguousarray(img[:, ::-1]), mbox).lmk_px[list(IBUG68_MIRROR)]
        b[:, 0] = W - 1 - b[:, 0]
        errs.append(float(np.linalg.norm(a - b, axis=1).mean()))
    assert errs[0] < 1.5, errs
    assert errs[0] < errs[1], errs


# ------------------------------------------------------------------------------------------------
# the PIP head and the 6-D pose head (issue 19)
# ------------------------------------------------------------------------------------------------
def _perfect_pip_outputs(net, target):
    """The raw ``"pip"`` outputs that encode ``target`` exactly (one-hot cells, exact offsets)."""
    B = target.shape[0]
    G, s, half = net.grid, net.cell_size(), net.config["input_size"] / 2
    t = target[:, :204].view(B, 68, 3)
    u = (t[..., :2] * half + half - 0.5 + 0.5) / s
    c = u.floor().clamp(0, G - 1)
    heat = torch.full((B, 68, G, G), -20.0)
    off = torch.zeros(B, 68, 2, G, G)
    z = torch.zeros(B, 68, G, G)
    K = len(net.nb[0])
    nb = torch.zeros(B, 68, K, 2, G, G)
    for b in range(B):
        for i in range(68):
            cx, cy = int(c[b, i, 0]), int(c[b, i, 1])
            heat[b, i, cy, cx] = 20.0
            off[b, i, :, cy, cx] = u[b, i] - c[b, i]
            z[b, i, cy, cx] = t[b, i, 2]
            for k, j in enumerate(net.nb[i]):
                nb[b, i, k, :, cy, cx] = u[b, j] - c[b, i]
    from recon3d.camera import pose_angles_to_matrix

    R = pose_angles_to_matrix(torch.deg2rad(target[:, 204:207] * 90.0))
    pose = torch.cat([R[..., :, 0], R[..., :, 1]], -1)
    return {"heat": heat, "off": off, "z": z, "nb": nb, "pose": pose}


def test_pip_head_decodes_its_targets_and_its_loss_is_minimal_there():
    from recon3d.nn.landmarks import LandmarkNet, encode_targets
    from recon3d.train.recipes.landmarks import pip_loss

    net = LandmarkNet(width=(8, 12, 16, 24, 32), hidden=32, head="pip", neck=16).eval()
    assert net.grid == 7 and net.cell_size() == 16.0
    g = torch.Generator().manual_seed(0)
    lmk = torch.rand(3, 68, 2, generator=g) * 120 - 4  # a few points outside the 112 window
    lz = torch.randn(3, 68, generator=g) * 10
    pose = torch.tensor([[0.0, 0.0, 0.0], [70.0, -10.0, 5.0], [-40.0, 20.0, -15.0]])
    y = encode_targets(lmk, lz, pose)
    out = _perfect_pip_outputs(net, y)
    net.forward = lambda x: out  # the decoder alone
    xy, z, p = net.predict(torch.zeros(3, 3, 112, 112))
    torch.testing.assert_close(xy, lmk, atol=1e-3, rtol=0)
    torch.testing.assert_close(z, lz, atol=1e-3, rtol=0)
    torch.testing.assert_close(p, pose, atol=1e-3, rtol=0)
    best = float(pip_loss(out, y, net, 5.0, 2.0, 1.0))
    assert best < 0.01
    worse = dict(out, off=out["off"] + 0.3)
    assert float(pip_loss(worse, y, net, 5.0, 2.0, 1.0)) > best + 1.0
    # sample weights (the extra sets' column): a zero-weight sample does not count
    bad = dict(out, off=out["off"].clone())
    bad["off"][0] += 1.0
    yw = torch.cat([y, torch.tensor([[0.0], [1.0], [1.0]])], 1)
    assert float(pip_loss(bad, yw, net, 5.0, 2.0, 1.0)) < 0.01


def test_rot6d_and_pose_head_start():
    from recon3d.camera import pose_angles_to_matrix
    from recon3d.nn.landmarks import LandmarkNet, pose_to_degrees, rot6d_to_matrix

    R = pose_angles_to_matrix(torch.deg2rad(torch.tensor([[30.0, -20.0, 10.0], [85.0, 5.0, -3.0]])))
    d6 = torch.cat([R[..., :, 0] * 3.0, R[..., :, 1] + 0.5 * R[..., :, 0]], -1)  # scaled and skewed columns
    torch.testing.assert_close(rot6d_to_matrix(d6), R, atol=1e-5, rtol=0)
    torch.testing.assert_close(pose_to_degrees(d6, "6d"), torch.tensor([[30.0, -20.0, 10.0], [85.0, 5.0, -3.0]]),
                               atol=1e-3, rtol=0)
    # an untrained pose head says frontal, and the pip head refuses the Euler pose
    _, _, p = LandmarkNet(width=(8, 12, 16, 24, 32), hidden=32, head="pip", neck=16).eval().predict(torch.randn(1, 3, 112, 112))
    torch.testing.assert_close(p, torch.zeros(1, 3), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="6d"):
        LandmarkNet(head="pip", pose="euler")


def test_pip_training_with_an_extra_weighted_set(tmp_path, astronaut_lmk, model):
    from recon3d.nn.landmarks import LandmarkNet, load_regressor_net, save_regressor
    from recon3d.train.recipes.landmarks import LandmarkRecipe, TrainConfig, train

    _write_tiny_set(tmp_path / "set", astronaut_lmk, model)
    _write_tiny_set(tmp_path / "extra", astronaut_lmk, model, n_views=4)
    torch.manual_seed(0)
    net = LandmarkNet(width=(8, 12, 16, 24, 32), hidden=32, head="pip", neck=16)
    cfg = TrainConfig(epochs=6, batch=8, lr=3e-3, warmup_steps=5)
    rec = LandmarkRecipe(tmp_path / "set", cfg, net=net, extra=[(tmp_path / "extra", 0.25)])
    n = rec.start_epoch(0, 0)
    x, y = rec.batch(0, 0)
    assert y.shape == (8, 208) and set(y[:, -1].tolist()) <= {1.0, 0.25}
    assert n == len(rec.data) // 8 and rec.n_parts[1] > 0
    net, hist = train(tmp_path / "set", tmp_path / "run", cfg, net=net, extra=[(tmp_path / "extra", 0.25)])
    losses = [h["train_loss"] for h in hist]
    assert np.mean(losses[-2:]) < 0.9 * losses[0], losses
    assert hist[-1]["n_train_1"] > 0 and np.isfinite(hist[-1]["val_nme"])
    save_regressor(net, tmp_path / "pip.safetensors")
    net2, _ = load_regressor_net(tmp_path / "pip.safetensors")
    assert net2.head == "pip" and net2.config["neck"] == 16
    xb = torch.randn(2, 3, 112, 112)
    with torch.no_grad():  # fp16 round trip: the same raw outputs up to half precision (the decoded
        a, b = net2(xb), net.eval()(xb)  # argmax can flip between near-tied cells of a barely trained net)
    for k in ("heat", "off", "nb", "pose"):
        torch.testing.assert_close(a[k], b[k], atol=3e-2, rtol=1e-2)


def test_shipped_versions_by_name():
    from recon3d.nn.landmarks import REGRESSOR_VERSIONS, load_regressor

    assert "v1" in REGRESSOR_VERSIONS
    r = load_regressor("v1", flip_test=False)
    assert r.net.head == "fc"


def test_train_cli_pip_head_extra_set_and_export(tmp_path, astronaut_lmk, model, capsys):
    from pipelines.synthesize_poses import main as synth_main
    from pipelines.train_regressor import main
    from recon3d.nn.landmarks import load_regressor_net

    _write_tiny_set(tmp_path / "set", astronaut_lmk, model, n_views=4)
    _write_tiny_set(tmp_path / "extra", astronaut_lmk, model, n_views=4)
    assert main([str(tmp_path / "set"), "--out", str(tmp_path / "run"), "--extra", str(tmp_path / "nowhere")]) == 2
    assert "no samples/ folder" in capsys.readouterr().err
    rc = main([str(tmp_path / "set"), "--out", str(tmp_path / "run"), "--head", "pip", "--extra", f"{tmp_path / 'extra'}:0.3",
               "--epochs", "1", "--batch", "4", "--clock", "cpu", "--threads", "1", "--export", str(tmp_path / "w.safetensors"), "-q"])
    assert rc == 0
    net, meta = load_regressor_net(tmp_path / "w.safetensors")
    assert net.head == "pip" and meta["head"] == "pip"
    assert "0.3" in meta["training_data"] and "faces-128" in meta["licence"]
    # --labels needs a pseudo-label folder
    with pytest.raises(SystemExit):
        synth_main([str(tmp_path), "--labels", str(tmp_path / "no-labels"), "--out", str(tmp_path / "o")])
    assert "pipelines.pseudo_label" in capsys.readouterr().err


def test_reconstruct_config_fit_init_pose_and_regressor_version():
    from recon3d.reconstruct import ReconstructConfig, reconstruct

    with pytest.raises(ValueError, match="fit_init_pose"):
        ReconstructConfig(fit_init_pose="head")
    img = skimage_data.astronaut()
    cfg = ReconstructConfig(photometric=False, texture_size=64, regressor="v1")
    a = reconstruct(img, config=cfg)
    b = reconstruct(img, config=ReconstructConfig(photometric=False, texture_size=64, regressor="v1",
                                                  fit_init_pose="regressor"))
    # a near-frontal photo: both starts reach the same fit
    assert (a.fit.pose_deg - b.fit.pose_deg).abs().max() < 1.0
