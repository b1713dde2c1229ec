"""The learned occluder segmenter (recon3d.nn.occluder) and its training data (recon3d.data.occluders):
shapes, pasting, crop geometry, weights I/O, training smoke test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from recon3d.data.occluders import paste_occluders, shape_bank
from recon3d.errors import AssetError, ShapeError
from recon3d.nn.occluder import (
    CROP_SIZE,
    OccluderNet,
    crop,
    crop_box,
    load_occluder_net,
    occluder_probability,
    save_occluder_net,
    uncrop,
)


def test_shape_bank_gives_varied_non_empty_shapes():
    bank = shape_bank(12, seed=3)
    assert bank.shape == (12, CROP_SIZE, CROP_SIZE) and bank.dtype == np.uint8
    area = bank.reshape(12, -1).mean(1)
    assert (area > 0.003).all() and (area < 0.6).all(), area
    assert len({round(float(a), 4) for a in area}) == 12  # no two shapes alike
    np.testing.assert_array_equal(bank, shape_bank(12, seed=3))


def test_paste_occluders_targets_match_changed_pixels():
    faces = torch.full((8, 3, CROP_SIZE, CROP_SIZE), 0.5)
    faces[:, 0] = 0.9  # a red "face": any pasted texture differs from it somewhere
    bank = torch.from_numpy(shape_bank(6))
    x, y = paste_occluders(faces, bank, torch.Generator().manual_seed(0), p_empty=0.0)
    assert x.shape == faces.shape and y.shape == (8, 1, CROP_SIZE, CROP_SIZE)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    assert (y.flatten(1).sum(1) > 0).sum() >= 6  # most samples got an occluder inside the crop
    x2, y2 = paste_occluders(faces, bank, torch.Generator().manual_seed(0), p_empty=0.0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    _, y0 = paste_occluders(faces, bank, torch.Generator().manual_seed(0), p_empty=1.0)
    assert y0.sum() == 0


def test_crop_and_uncrop_are_inverse_geometry():
    H, W = 200, 300
    img = np.zeros((H, W, 3), np.float32)
    img[60:140, 100:180] = 1.0  # a bright square
    lmk = np.stack(np.meshgrid(np.linspace(110, 170, 17), np.linspace(70, 130, 4)), -1).reshape(-1, 2)[:68]
    box = crop_box(lmk)
    c = crop(img, box)
    assert c.shape == (3, CROP_SIZE, CROP_SIZE)
    back = uncrop(c[0], box, H, W)
    assert back.shape == (H, W)
    inner = np.zeros((H, W), bool)
    inner[64:136, 104:176] = True
    assert back[inner].min() > 0.95 and back[:, :60].max() == 0.0


def test_weights_round_trip_and_wrong_files(tmp_path):
    torch.manual_seed(0)
    net = OccluderNet(width=(4, 8, 8, 8)).eval()
    p = tmp_path / "occ.safetensors"
    save_occluder_net(net, p, meta={"note": "test"})
    net2, meta = load_occluder_net(p)
    assert meta == {"note": "test"}
    x = torch.rand(1, 3, CROP_SIZE, CROP_SIZE)
    with torch.no_grad():
        assert torch.allclose(net(x), net2(x), atol=2e-2)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(AssetError, match="not a safetensors"):
        load_occluder_net(bad)
    with pytest.raises(AssetError, match="not found"):
        load_occluder_net(tmp_path / "missing.safetensors")


def test_occluder_probability_shapes_and_errors():
    torch.manual_seed(0)
    net = OccluderNet(width=(4, 8, 8, 8)).eval()
    img = skimage_data.astronaut()[:200, 100:300].astype(np.float32) / 255
    lmk = np.stack(np.meshgrid(np.linspace(60, 140, 17), np.linspace(40, 160, 4)), -1).reshape(-1, 2)[:68]
    p = occluder_probability(img, lmk, net=net)
    assert p.shape == (200, 200) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    with pytest.raises(ShapeError):
        occluder_probability(img[..., 0], lmk, net=net)
    with pytest.raises(ShapeError):
        occluder_probability(img, lmk[:5], net=net)


def test_training_smoke(tmp_path):
    """The training pipeline runs on two photos, checkpoints, exports loadable weights and resumes."""
    from pipelines.train_occluder import main
    from recon3d.detect import detect_landmarks

    img = skimage_data.astronaut()
    det = detect_landmarks(torch.from_numpy(img.astype(np.float32) / 255), backend="dlib")
    lmk = det.lmk_px.numpy() + 1.0  # .pts is 1-based
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for i, arr in enumerate((img, img[:, ::-1])):
        Image.fromarray(np.ascontiguousarray(arr)).save(photos / f"p{i}.png")
        pts = lmk.copy()
        if i:
            pts[:, 0] = img.shape[1] + 1 - pts[:, 0]
        (photos / f"p{i}.pts").write_text("version: 1\nn_points: 68\n{\n" + "".join(f"{x} {y}\n" for x, y in pts) + "}\n")
    out = tmp_path / "run"
    rc = main([str(photos), "--out", str(out), "--max-minutes", "0.05", "--batch", "4", "--jitters", "3",
               "--shapes", "12", "--export", str(tmp_path / "w.safetensors"), "-q"])
    assert rc == 0
    st = torch.load(out / "last.pt", weights_only=True)
    assert int(st["step"]) > 0
    net, meta = load_occluder_net(tmp_path / "w.safetensors")
    assert meta["steps"] == int(st["step"]) and meta["n_photos"] == 2
    # a second run finds the budget spent and only re-exports
    assert main([str(photos), "--out", str(out), "--max-minutes", "0.05", "--batch", "4", "--shapes", "12", "-q"]) == 0
    assert int(torch.load(out / "last.pt", weights_only=True)["step"]) == int(st["step"])


def test_shipped_weights_find_a_pasted_occluder_and_leave_the_face():
    """The shipped network (sha256-checked by recon3d.assets) marks a dark bar pasted over the
    astronaut's mouth and little of the rest of her face."""
    from recon3d.detect import detect_faces

    img = skimage_data.astronaut().astype(np.float32) / 255
    lmk = detect_faces(img, backend="dlib")[0].lmk_px.numpy()
    net, meta = load_occluder_net()
    assert meta["steps"] > 1000
    lo, hi = lmk.min(0), lmk.max(0)
    face = np.zeros(img.shape[:2], bool)
    face[int(lo[1]):int(hi[1]), int(lo[0]):int(hi[0])] = True
    p_clean = occluder_probability(img, lmk, net=net)
    bar = np.zeros_like(face)
    y = int(lmk[48:68, 1].mean())
    bar[y - 12:y + 12, int(lo[0]) + 5:int(hi[0]) - 5] = True
    occluded = img.copy()
    occluded[bar] = [0.15, 0.12, 0.1]
    p = occluder_probability(occluded, lmk, net=net)
    assert (p[bar] > 0.5).mean() > 0.7, (p[bar] > 0.5).mean()
    assert (p[face & ~bar] > 0.5).mean() < 0.15
    assert (p_clean[face] > 0.5).mean() < 0.15


def test_shape_bank_frames_are_outlines():
    """With ``frames=True`` two of every eight shapes are spectacle frames: thin rings with holes."""
    from scipy import ndimage

    bank = shape_bank(16, seed=1, frames=True)
    for i in (6, 7, 14, 15):
        m = bank[i].astype(bool)
        filled = ndimage.binary_fill_holes(m)
        assert filled.sum() > 2 * m.sum(), i  # mostly hole: an outline, not a blob


@pytest.mark.parametrize("angle", [0.0, 0.6, -1.2])
def test_turned_crop_and_uncrop_round_trip(angle):
    """A crop turned by ``angle`` maps back onto the same image pixels."""
    H, W = 160, 200
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.stack([xx / W, yy / H, np.zeros_like(xx)], -1)  # encodes its own coordinates
    box = np.array([50.0, 30.0, 100.0])
    c = crop(img, box, angle=angle)
    back_x = uncrop(c[0], box, H, W, angle)
    inner = np.zeros((H, W), bool)
    inner[70:90, 90:110] = True  # around the box centre, inside the turned crop for any angle
    assert np.abs(back_x[inner] - img[..., 0][inner]).max() < 0.01
