"""Face photo sets (recon3d.data.faces): aligned folders, splits, the cache, batches."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from recon3d.data import faces as faces_mod
from recon3d.data.faces import FaceBatches, FaceSet, list_photos, load_faces
from recon3d.data.splits import is_held_out, photo_key


def _write_folder(root, n=12, size=32, corrupt=True):
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    for i in range(n):
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        folder = root / "sub" if i % 3 == 0 else root
        ext = (".png", ".jpg", ".webp")[i % 3] if i % 3 != 1 else ".PNG"
        Image.fromarray(arr).save(folder / f"face{i:02d}{ext}", quality=95) if ext != ".PNG" else \
            Image.fromarray(arr).save(folder / f"face{i:02d}{ext}", format="PNG")
    if corrupt:
        (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture
def folder(tmp_path):
    return _write_folder(tmp_path / "photos")


def test_shapes_keys_and_corrupt_skipped(folder, tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 of 13"):
        fs = load_faces(folder, 16, split="all", cache_dir=tmp_path / "c", progress=False)
    assert fs.images.shape == (12, 3, 16, 16) and fs.images.dtype == torch.uint8
    assert fs.res == 16 and fs.align == "none" and fs.skipped == ["broken.jpg"]
    assert len(fs.keys) == 12 and fs.keys == [photo_key(folder / p, "/") for p in fs.paths]
    assert fs.paths == sorted(fs.paths) and "sub/face00.png" in fs.paths


def test_same_size_resize_is_exact(tmp_path):
    root = tmp_path / "exact"
    root.mkdir()
    arr = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(arr).save(root / "a.png")
    fs = load_faces(root, 20, split="all", cache_dir=tmp_path / "c", progress=False)
    assert np.array_equal(fs.images[0].numpy().transpose(1, 2, 0), arr)


@pytest.mark.filterwarnings("ignore:load_faces")
def test_split_deterministic_and_disjoint(folder, tmp_path):
    kw = dict(val_percent=40.0, cache_dir=tmp_path / "c", progress=False)
    tr = load_faces(folder, 8, split="train", **kw)
    va = load_faces(folder, 8, split="val", **kw)
    al = load_faces(folder, 8, split="all", **kw)
    assert len(va) > 0 and len(tr) > 0 and len(tr) + len(va) == len(al)
    assert set(tr.keys).isdisjoint(va.keys)
    assert all(is_held_out(k, 40.0) for k in va.keys) and not any(is_held_out(k, 40.0) for k in tr.keys)
    # the split of a photo does not depend on which other photos are there (file order / count)
    for p in list_photos(folder)[::2]:
        p.unlink()
    va2 = load_faces(folder, 8, split="val", **kw)
    assert set(va2.keys) <= set(va.keys)


def test_cache_hit_reads_no_image(folder, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    with pytest.warns(UserWarning):
        first = load_faces(folder, 16, split="all", cache_dir=cache, progress=False)
    assert first.cache_file is not None and first.cache_file.is_file()
    assert sorted(q.suffix for q in cache.iterdir()) == [".json", ".npy"]

    def no_open(*a, **k):
        raise AssertionError("the cache hit opened an image")

    monkeypatch.setattr(faces_mod.Image, "open", no_open)
    second = load_faces(folder, 16, split="all", cache_dir=cache, progress=False)
    assert torch.equal(second.images, first.images) and second.keys == first.keys
    assert second.skipped == ["broken.jpg"]
    monkeypatch.undo()
    # a changed file invalidates the cache
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "face02.webp")
    with pytest.warns(UserWarning):
        third = load_faces(folder, 16, split="all", cache_dir=cache, progress=False)
    assert third.cache_file != first.cache_file and not torch.equal(third.images, first.images)


def test_limit_and_errors(folder, tmp_path):
    with pytest.warns(UserWarning, match="skipped 1 of 3"):  # limit counts files (broken.jpg sorts first)
        fs = load_faces(folder, 8, split="all", limit=3, cache_dir=tmp_path / "c", progress=False)
    assert len(fs) == 2
    with pytest.raises(ValueError):
        load_faces(folder, 8, split="test", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError):
        load_faces(folder, 8, align="mtcnn", cache_dir=tmp_path / "c")
    with pytest.raises(Exception, match="not a folder"):
        load_faces(tmp_path / "missing", 8, cache_dir=tmp_path / "c")


def test_face_batches_reproducible():
    imgs = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 4, 4).contiguous()
    fs = FaceSet(imgs, [str(i) for i in range(10)], None, 4)
    a, b = FaceBatches(fs, 3, seed=7), FaceBatches(fs, 3, seed=7)
    assert a.steps_per_epoch == 3
    seq = [a.indices(s).tolist() for s in range(7)]
    assert [b.indices(s).tolist() for s in reversed(range(7))] == seq[::-1]  # any order: a pure function
    assert len(set(sum(seq[:3], []))) == 9  # no repeat within an epoch
    assert seq[:3] != seq[3:6]  # a new permutation each epoch
    assert FaceBatches(fs, 3, seed=8).indices(0).tolist() != seq[0] or FaceBatches(fs, 3, 8).indices(1).tolist() != seq[1]
    x = a.batch(4)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 4, 4) and -1 <= float(x.min()) <= float(x.max()) <= 1
    assert torch.allclose(x[:, 0, 0, 0], imgs[a.indices(4), 0, 0, 0].float() / 127.5 - 1)
    tiny = FaceBatches(FaceSet(imgs[:2], ["0", "1"], None, 4), 5, seed=0)
    assert tiny.batch(0).shape[0] == 5


@pytest.mark.shared
def test_shared_faces128(shared_dir, tmp_path):
    root = shared_dir / "faces-128"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    t = time.perf_counter()
    fs = load_faces(root, 64, split="train", limit=64, cache_dir=tmp_path, progress=False)
    cold = time.perf_counter() - t
    assert fs.images.shape == (64, 3, 64, 64) and fs.align == "none" and not fs.skipped
    assert all(k.startswith("faces-128/") for k in fs.keys)
    t = time.perf_counter()
    again = load_faces(root, 64, split="train", limit=64, cache_dir=tmp_path, progress=False)
    assert time.perf_counter() - t < 2.0 and torch.equal(again.images, fs.images), cold
    m = fs.images.float().mean()
    assert 40 < float(m) < 200


# --- align="detect": the similarity warp to TEMPLATE_68 ---------------------------------------


def _blob_image(size, centre_xy, sigma=2.0):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    g = np.exp(-((xx - centre_xy[0]) ** 2 + (yy - centre_xy[1]) ** 2) / (2 * sigma ** 2))
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, -1)


def _centroid(chw):
    g = chw[0].astype(np.float64)
    g = np.where(g > g.max() * 0.2, g, 0)
    yy, xx = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    return np.array([(g * xx).sum(), (g * yy).sum()]) / g.sum()


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (68, 2))
    a, s, t = np.deg2rad(25.0), 1.7, np.array([12.0, -4.0])
    r = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = faces_mod.similarity_transform(src, src @ r.T + t)
    assert np.allclose(m[:2, :2], r) and np.allclose(m[:2, 2], t)


def test_align_face_identity_on_the_template():
    arr = np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    out = faces_mod.align_face(arr, faces_mod.TEMPLATE_68 * 40 - 0.5, 40)
    assert out.shape == (3, 40, 40) and np.abs(out.astype(int) - arr.transpose(2, 0, 1)).max() <= 1


@pytest.mark.parametrize("scale,size", [(2.5, 200), (9.0, 700)])  # the second one shrinks the photo first
def test_align_face_puts_landmarks_on_the_template(scale, size):
    res = 64
    a = np.deg2rad(-30.0)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    unit = faces_mod.TEMPLATE_68.astype(np.float64)
    lmk = (unit * res - res / 2) @ rot.T + size / 2 - 0.5  # template -> photo pixel centres
    k = 36  # an eye corner
    img = _blob_image(size, lmk[k], sigma=1.5 * scale)
    out = faces_mod.align_face(img, lmk, res)
    want = unit[k] * res - 0.5
    assert np.linalg.norm(_centroid(out) - want) < 0.35, (_centroid(out), want)


def test_load_faces_auto_detects_unaligned_folders(tmp_path, monkeypatch):
    root = tmp_path / "wild"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(60, 80), (90, 70), (50, 50), (64, 64)]):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if i != 3 else np.zeros((h, w, 3), np.uint8)
        Image.fromarray(arr).save(root / f"p{i}.png")
    seen = []

    def fake(u8):  # a "face" filling the middle of the photo, none in the black one
        seen.append(u8.shape)
        if u8.max() == 0:
            return None
        h, w = u8.shape[:2]
        side = 0.6 * min(h, w)
        return faces_mod.TEMPLATE_68 * side + np.array([(w - side) / 2, (h - side) / 2]) - 0.5

    monkeypatch.setattr(faces_mod, "_largest_face_landmarks", fake)
    with pytest.warns(UserWarning, match="0 unreadable, 1 without a face"):
        fs = load_faces(root, 32, split="all", cache_dir=tmp_path / "c", progress=False)
    assert fs.align == "detect" and fs.images.shape == (3, 3, 32, 32) and fs.skipped == ["p3.png"]
    assert sorted(seen) == sorted([(60, 80, 3), (90, 70, 3), (50, 50, 3), (64, 64, 3)])
    # align="none" on the same folder: resized as they are (no detector)
    seen.clear()
    fs2 = load_faces(root, 32, split="all", align="none", cache_dir=tmp_path / "c", progress=False)
    assert fs2.align == "none" and len(fs2) == 4 and not seen


@pytest.mark.shared
def test_shared_detect_and_align_real_photos(shared_dir, tmp_path):
    root = shared_dir / "300w" / "afw"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    pytest.importorskip("dlib")
    fs = load_faces(root, 128, split="all", align="auto", limit=4, cache_dir=tmp_path, progress=False)
    assert fs.align == "detect" and len(fs) >= 3
    errs = []
    for rel, img in zip(fs.paths, fs.images.numpy(), strict=True):
        # where the similarity puts the photo's landmarks, vs the landmarks found again in the output
        lmk = faces_mod._largest_face_landmarks(np.asarray(faces_mod._open_rgb(root / rel)))
        m = faces_mod.similarity_transform(lmk + 0.5, faces_mod.TEMPLATE_68 * 128)
        mapped = (np.c_[lmk + 0.5, np.ones(68)] @ m.T)[:, :2] - 0.5
        again = faces_mod._largest_face_landmarks(np.ascontiguousarray(img.transpose(1, 2, 0)))
        assert again is not None
        errs.append(np.linalg.norm(again - mapped, axis=1).mean())
    assert np.median(errs) < 2.0, errs  # pixels at 128 px (dlib's own jitter is ~1 px)
