"""Tests for recon3d.io.image and recon3d.io.landmarks_file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recon3d.errors import ImageError, Recon3DError
from recon3d.io import (
    LandmarkFileError,
    LoadedImage,
    load_image,
    load_landmarks,
    read_pts,
    save_image,
    to_uint8,
)


def _noise(h=32, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _png_header_only(w: int, h: int) -> bytes:
    """A tiny PNG whose IHDR claims w x h (8-bit RGB) and that holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _png_rgb16(arr: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint16 array as a 16-bit RGB PNG (PIL cannot write those)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- load_image: good inputs


def test_load_rgb_png_exact(tmp_path):
    a = _noise()
    p = tmp_path / "x.png"
    Image.fromarray(a).save(p)
    li = load_image(p)
    assert isinstance(li, LoadedImage)
    assert li.image.shape == (32, 48, 3) and li.image.dtype == torch.float32
    assert li.size == (32, 48) and li.path == p and li.original_mode == "RGB" and not li.exif_transposed
    assert torch.equal(torch.from_numpy(a).float() / 255.0, li.image)
    assert li.name == "x.png"


def test_load_from_bytes_and_array():
    a = _noise()
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    li = load_image(buf.getvalue())
    assert li.path is None and torch.allclose(li.image, torch.from_numpy(a).float() / 255.0)
    li2 = load_image(a)
    assert li2.original_mode == "array:uint8" and torch.equal(li.image, li2.image)
    li3 = load_image(torch.from_numpy(a).float() / 255.0)
    assert torch.allclose(li3.image, li.image)


def test_grayscale_replicated(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    p = tmp_path / "g.png"
    Image.fromarray(g, mode="L").save(p)
    li = load_image(p)
    assert li.original_mode == "L" and li.image.shape == (8, 8, 3)
    assert torch.equal(li.image[..., 0], li.image[..., 2])
    assert torch.allclose(li.image[..., 1], torch.from_numpy(g).float() / 255.0)


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 255  # red
    a[:2, :, 3] = 255  # top opaque, bottom fully transparent
    p = tmp_path / "a.png"
    Image.fromarray(a, mode="RGBA").save(p)
    li = load_image(p)
    assert li.original_mode == "RGBA"
    assert torch.allclose(li.image[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(li.image[3, 0], torch.tensor([1.0, 1.0, 1.0]))


def test_la_palette_and_cmyk(tmp_path):
    la = Image.fromarray(np.full((4, 4, 2), [0, 128], np.uint8), mode="LA")
    la.save(tmp_path / "la.png")
    v = load_image(tmp_path / "la.png").image
    assert torch.allclose(v, torch.full_like(v, 1.0 - 128 / 255), atol=1e-6)  # black at half alpha on white

    p = Image.fromarray(_noise(8, 8)).convert("P")
    p.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").image.shape == (8, 8, 3)

    c = Image.new("CMYK", (6, 5), (0, 255, 255, 0))  # red in CMYK
    c.save(tmp_path / "c.jpg")
    li = load_image(tmp_path / "c.jpg")
    assert li.original_mode == "CMYK" and li.size == (5, 6)
    assert li.image[2, 3, 0] > 0.8 and li.image[2, 3, 1] < 0.2


def test_16bit_gray_png(tmp_path):
    g = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(g).save(p)
    li = load_image(p)
    assert li.original_mode.startswith("I")
    expect = torch.from_numpy(g.astype(np.float32) / 65535.0)
    assert torch.allclose(li.image[..., 0], expect, atol=1e-6)
    assert float(li.image.max()) <= 1.0


def test_16bit_rgb_png(tmp_path):
    a = np.random.default_rng(1).integers(0, 65536, size=(5, 7, 3)).astype(np.uint16)
    p = tmp_path / "rgb16.png"
    p.write_bytes(_png_rgb16(a))
    li = load_image(p)
    assert li.image.shape == (5, 7, 3)
    assert torch.allclose(li.image, torch.from_numpy(a.astype(np.float32) / 65535.0), atol=1.0 / 255 + 1e-6)


def test_exif_orientation_6_rotates(tmp_path):
    # Stored 20 rows x 40 cols: left half red, right half blue. Orientation 6 = rotate 90 deg
    # clockwise to display, so the stored left edge becomes the top.
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20, 0] = 255
    a[:, 20:, 2] = 255
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif.tobytes(), quality=95)
    li = load_image(p)
    assert li.exif_transposed
    assert li.size == (40, 20) and li.image.shape == (40, 20, 3)
    top, bottom = li.image[5, 10], li.image[35, 10]
    assert top[0] > 0.8 and top[2] < 0.2  # red on top
    assert bottom[2] > 0.8 and bottom[0] < 0.2  # blue at the bottom


# ---------------------------------------------------------------- load_image: bad inputs


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.jpg.*empty file"):
        load_image(p)


def test_text_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n")
    with pytest.raises(ImageError, match=r"notes.jpg.*not an image"):
        load_image(p)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path, fmt):
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, format=fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut.{fmt.lower()}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.\w+.*(truncated|corrupt)"):
        load_image(p)


def test_corrupt_middle(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_noise(64, 64)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[60:200] = b"\x00" * 140
    p = tmp_path / "bad.png"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="bad.png"):
        load_image(p)


def test_huge_header_refused_before_decode(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(100_000, 100_000))
    assert p.stat().st_size < 100
    with pytest.raises(ImageError, match=r"bomb.png.*(refused|too large)"):
        load_image(p)
    # Below Pillow's own limit but above ours: our header check refuses it (no pixel data exists,
    # so reaching the decoder would have produced a "truncated" message instead).
    p2 = tmp_path / "big.png"
    p2.write_bytes(_png_header_only(9000, 9000))
    with pytest.raises(ImageError, match=r"big.png.*refused.*max_pixels"):
        load_image(p2)
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(np.zeros((10, 10, 3), np.uint8), max_pixels=50)


def test_bad_array_inputs():
    with pytest.raises(ImageError, match="array must be"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="expected a path"):
        load_image(12345)  # type: ignore[arg-type]


def test_errors_are_recon3d_errors(tmp_path):
    p = tmp_path / "e.png"
    p.write_bytes(b"")
    with pytest.raises(Recon3DError):
        load_image(p)


# ---------------------------------------------------------------- save_image / to_uint8


def test_to_uint8_rounds_and_clips():
    x = torch.tensor([[[-0.1, 0.5, 1.2]]])
    assert to_uint8(x).tolist() == [[[0, 128, 255]]]
    assert to_uint8(x[None]).shape == (1, 1, 3)


def test_save_image_roundtrip_atomic(tmp_path):
    a = _noise()
    img = torch.from_numpy(a).float() / 255.0
    p = save_image(tmp_path / "out.png", img)
    assert p.is_file()
    assert np.array_equal(np.asarray(Image.open(p)), a)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.png"]  # no temp file left
    save_image(tmp_path / "out.png", img * 0)  # overwrite in place
    assert np.asarray(Image.open(p)).max() == 0
    save_image(tmp_path / "out.jpg", img[None])
    assert load_image(tmp_path / "out.jpg").size == (32, 48)


def test_save_image_errors(tmp_path):
    with pytest.raises(ImageError, match="unknown image suffix"):
        save_image(tmp_path / "x.notanimage", torch.zeros(4, 4, 3))
    with pytest.raises(ImageError, match="does not exist"):
        save_image(tmp_path / "nodir" / "x.png", torch.zeros(4, 4, 3))
    with pytest.raises(ImageError, match="must be"):
        save_image(tmp_path / "x.png", torch.zeros(4, 4, 2))


# ---------------------------------------------------------------- landmark files


def _pts_text(xy: np.ndarray, n_decl: int | None = None) -> str:
    n = len(xy) if n_decl is None else n_decl
    return "version: 1\nn_points: %d\n{\n%s\n}\n" % (n, "\n".join(f"{x:.3f} {y:.3f}" for x, y in xy))


def _xy(seed=0):
    return np.random.default_rng(seed).uniform(1, 200, size=(68, 2))


def test_pts_one_based_to_zero_based(tmp_path):
    xy = _xy()
    p = tmp_path / "a.pts"
    p.write_text(_pts_text(xy))
    lm = load_landmarks(p)
    assert lm.shape == (68, 2) and lm.dtype == torch.float32
    assert torch.allclose(lm, torch.from_numpy(xy - 1.0).float(), atol=1e-3)
    assert torch.equal(read_pts(p), lm)


def test_txt_and_npy_zero_based(tmp_path):
    xy = _xy(1)
    t = tmp_path / "a.txt"
    t.write_text("# x y, 0-based\n" + "\n".join(f"{x}, {y}" for x, y in xy) + "\n\n")
    assert torch.allclose(load_landmarks(t), torch.from_numpy(xy).float())
    n = tmp_path / "a.npy"
    np.save(n, xy)
    assert torch.allclose(load_landmarks(n), torch.from_numpy(xy).float())
    np.save(n, np.concatenate([xy, np.zeros((68, 1))], 1))  # (68, 3): z dropped
    assert torch.allclose(load_landmarks(n), torch.from_numpy(xy).float())


def test_real_300w_pts_file(shared_dir):
    pts = sorted((shared_dir / "300w" / "afw").glob("*.pts"))
    if not pts:
        pytest.skip("no 300-W .pts files in ../shared/300w/afw")
    first = pts[0].read_text().split("{")[1].split()[:2]
    lm = load_landmarks(pts[0])
    assert lm.shape == (68, 2)
    assert abs(float(lm[0, 0]) - (float(first[0]) - 1.0)) < 1e-4


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("few.pts", None, "expected 68 landmarks, found 67"),
        ("hdr.pts", "mismatch", "n_points: 70"),
        ("nobrace.pts", "version: 1\nn_points: 68\n1 2\n", "not a .pts file"),
        ("badline.txt", "1 2\nfoo bar\n", r"badline.txt:2: expected two numbers"),
        ("three.txt", "1 2 3\n", "expected two numbers"),
        ("short.txt", "1 2\n3 4\n", "expected 68 landmarks, found 2"),
        ("x.csv", "1,2\n", "unknown landmark file type"),
    ],
)
def test_bad_landmark_files(tmp_path, name, content, match):
    p = tmp_path / name
    if content is None:
        content = _pts_text(_xy()[:67])
    elif content == "mismatch":
        content = _pts_text(_xy(), n_decl=70)
    p.write_text(content)
    with pytest.raises(LandmarkFileError, match=match):
        load_landmarks(p)


def test_bad_npy_and_missing(tmp_path):
    p = tmp_path / "w.npy"
    np.save(p, np.zeros((5, 2)))
    with pytest.raises(LandmarkFileError, match="expected 68 landmarks, found 5"):
        load_landmarks(p)
    q = tmp_path / "junk.npy"
    q.write_bytes(b"not numpy")
    with pytest.raises(LandmarkFileError, match="not a valid .npy"):
        load_landmarks(q)
    r = tmp_path / "nan.npy"
    np.save(r, np.full((68, 2), np.nan))
    with pytest.raises(LandmarkFileError, match="NaN"):
        load_landmarks(r)
    with pytest.raises(LandmarkFileError, match="not found"):
        load_landmarks(tmp_path / "missing.pts")
    with pytest.raises(Recon3DError):
        load_landmarks(Path(tmp_path / "missing.txt"))
