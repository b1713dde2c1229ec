"""recon3d.data.rotation_pairs and the chunk store: the mirror supervision of the rotation refiner."""

from __future__ import annotations

import numpy as np
import pytest

import recon3d.data.rotation_pairs as RP
from recon3d.data._chunks import ChunkStore
from recon3d.edit import make_synthetic_reconstruction, rotate_face
from recon3d.edit._common import fit_tensors
from recon3d.edit._learned_fill import template_matrix
from recon3d.edit._learned_rotate import frame_inputs, model_landmarks_px, to_frame
from recon3d.errors import Recon3DError
from recon3d.ops.morphology import erode


def test_flip_of_a_rotation_is_the_rotation_of_the_flip():
    # the toy face is left-right symmetric: the face at -y is the mirror image of the face at +y, and
    # turning each by mirrored angles must give mirror images (what the mirror supervision relies on)
    a = make_synthetic_reconstruction(size=96, yaw_deg=12.0, texture_size=64)
    b = make_synthetic_reconstruction(size=96, yaw_deg=-12.0, texture_size=64)
    ra = rotate_face(a, yaw_deg=40.0, absolute=True)
    rb = rotate_face(b, yaw_deg=-40.0, absolute=True)
    both = erode(ra.mask.numpy()[:, ::-1] & rb.mask.numpy(), 2)
    assert both.sum() > 1000
    assert np.abs(ra.image.numpy()[:, ::-1] - rb.image.numpy())[both].max() < 1e-3
    # and a different angle is not a mirror image
    rc = rotate_face(b, yaw_deg=-20.0, absolute=True)
    assert np.abs(ra.image.numpy()[:, ::-1] - rc.image.numpy())[both].mean() > 0.02


@pytest.mark.parametrize("yaw", [15.0, 30.0])
def test_mirror_sample_warp_matches_the_mirrored_photo(yaw):
    rec = make_synthetic_reconstruction(size=128, yaw_deg=yaw, texture_size=128)
    img = rec.image.numpy()
    s = RP.mirror_sample(rec, img, np.ones((128, 128, 1), np.float32))
    assert s["kind"] == 0 and s["warp"].shape == (3, 128, 128) and s["warp"].dtype == np.uint8
    assert s["masks"].shape == (3, 128, 128) and s["masks"][2].all()  # every pixel of the frame is in the photo
    np.testing.assert_allclose(s["pose"][1], [-yaw, 0.0, 0.0], atol=1e-3)
    face = erode(s["masks"][1], 3)
    assert face.sum() > 5000
    err = np.abs(s["warp"] / 255.0 - s["target"] / 255.0).transpose(1, 2, 0)[face].mean()
    # the un-mirrored photo in the same frame is far from the warp: the truth really is the mirror image
    src_px, _ = model_landmarks_px(rec, fit_tensors(rec).verts_cam)
    plain = to_frame(img, template_matrix(src_px, 128), 128)
    err_plain = np.abs(s["warp"] / 255.0 - plain).transpose(1, 2, 0)[face].mean()
    assert err < 0.02 and err_plain > 4 * err, (err, err_plain)
    # landmarks: x, y inside the frame, mirrored source and target agree on depth order
    assert np.abs(s["lmk_tgt"][:, :2]).max() < 1.0 and np.abs(s["lmk_src"][:, :2]).max() < 1.2
    assert s["emb"].shape == (128,) and np.isfinite(s["emb"]).all()


def test_frame_inputs_at_zero_rotation_is_the_photo():
    rec = make_synthetic_reconstruction(size=128, yaw_deg=10.0, texture_size=128)
    r = rotate_face(rec)  # no change
    fi = frame_inputs(rec, r, 64)
    assert fi.warp.shape == (3, 64, 64) and fi.filled.shape == (64, 64)
    face = erode(fi.face, 2)
    assert np.abs(fi.warp - fi.source).transpose(1, 2, 0)[face].mean() < 0.03
    np.testing.assert_allclose(fi.lmk_src, fi.lmk_tgt, atol=0.03)


def test_free_target_turns_20_to_60_degrees_within_the_limit():
    rng = np.random.default_rng(0)
    for y0 in (-65.0, -10.0, 0.0, 30.0, 68.0):
        for _ in range(20):
            y, p = RP.free_target((y0, 5.0, 0.0), rng)
            assert 15 <= abs(y - y0) <= 60 and -70 <= y <= 70 and abs(p - 5.0) <= 10


def test_chunk_store_roundtrip_resume_and_bad_chunks(tmp_path):
    fields = {"a": ((2, 3), np.uint8), "b": ((), np.float32)}
    st = ChunkStore(tmp_path / "c", fields, compress=True)
    assert st.index() == (set(), set())
    (tmp_path / "c").mkdir()
    st.write({0: {"a": np.full((2, 3), 7), "b": 1.5}, 1: "no face", 2: {"a": np.zeros((2, 3)), "b": 2.0}})
    st.write({3: "failed"})
    assert st.index() == ({0, 2}, {1, 3})
    idx, arrays, skipped = st.read()
    assert idx.tolist() == [0, 2] and arrays["a"].dtype == np.uint8 and arrays["a"][0, 0, 0] == 7
    assert arrays["b"].tolist() == [1.5, 2.0] and skipped == {1: "no face", 3: "failed"}
    (tmp_path / "c" / "chunk-000009-000010.npz").write_bytes(b"broken")
    assert st.index() == ({0, 2}, {1, 3})  # ignored with a warning
    assert len(st.read()[0]) == 2


def _fake_samples(photo, seed, *, res=RP.RES, emb_net=None):
    v = float(photo[0, 0, 0])
    if v > 0.9:
        raise Recon3DError("unreadable")

    def item(kind):
        return {"warp": np.full((3, res, res), int(v * 255), np.uint8), "source": np.zeros((3, res, res), np.uint8),
                "ident": np.zeros((3, res, res), np.uint8), "target": np.zeros((3, res, res), np.uint8),
                "masks": np.ones((3, res, res), bool), "lmk_src": np.zeros((68, 3), np.float32),
                "lmk_tgt": np.zeros((68, 3), np.float32), "emb": np.zeros(128, np.float32),
                "pose": np.zeros((2, 3), np.float32), "kind": kind}

    return {"mirror": item(0), "free": item(1), "cycle": "NoFaceError: no face"}


def test_build_resume_shards_and_skips(tmp_path, monkeypatch):
    from PIL import Image

    photos = []
    for i in range(5):
        p = tmp_path / "src" / f"f{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((40, 40, 3), 250 if i == 3 else 20 * i, np.uint8)).save(p)
        photos.append(p)
    monkeypatch.setattr(RP, "rotation_samples", _fake_samples)
    monkeypatch.setattr("recon3d.nn.identity.load_identity_net", lambda *a, **k: None)
    out = tmp_path / "pairs"
    assert RP.build_rotation_pairs(photos, out, chunk=2, shard=(0, 2), progress=False) == 3
    assert RP.build_rotation_pairs(photos, out, chunk=2, shard=(0, 2), progress=False) == 0  # resumed
    assert RP.build_rotation_pairs(photos, out, chunk=2, shard=(1, 2), progress=False) == 2
    pairs = RP.load_rotation_pairs(out)
    # 4 readable photos x (mirror, free); every cycle and the unreadable photo's three samples skipped
    assert len(pairs) == 8 and len(pairs.skipped) == 4 + 3
    assert pairs.items.tolist() == sorted(pairs.items.tolist())
    assert set(pairs.arrays["kind"].tolist()) == {0, 1}
    assert RP.rotation_pairs_size(out) == (8, 7)
    with pytest.raises(Recon3DError, match="other settings"):
        RP.build_rotation_pairs(photos, out, seed=1, progress=False)
    with pytest.raises(ValueError):
        RP.build_rotation_pairs(photos, out, shard=(2, 2), progress=False)
    with pytest.raises(Recon3DError, match="not a rotation pair folder"):
        RP.load_rotation_pairs(tmp_path / "nothing")
