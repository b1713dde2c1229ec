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
