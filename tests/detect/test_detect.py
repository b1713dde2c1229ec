"""Tests for recon3d.detect (dlib backend with fallbacks; face_alignment error path)."""

from __future__ import annotations

import pytest
import skimage.data as skimage_data  # noqa: E402  (scikit-image is a core dependency: no skip)
import torch

from recon3d.conventions import IBUG68_MIRROR, mirror_image_x, mirror_points_px
from recon3d.detect import DLIB_STAGES, PLAIN_HOG, FaceDetection, detect_faces, detect_landmarks
from recon3d.errors import BackendUnavailableError, NoFaceError, ShapeError
from recon3d.io import load_image


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return load_image(skimage_data.astronaut()).image


@pytest.fixture(scope="module")
def grace():
    from matplotlib import cbook

    return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _check_plausible(d: FaceDetection, H: int, W: int) -> None:
    assert d.lmk_px.shape == (68, 2) and d.lmk_px.dtype == torch.float32
    assert d.box_xyxy.shape == (4,)
    x0, y0, x1, y1 = d.box_xyxy.tolist()
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    m = 0.15 * (x1 - x0)  # landmarks (chin, brows) may overhang the HOG box slightly
    lm = d.lmk_px
    assert bool(
        ((lm[:, 0] >= x0 - m) & (lm[:, 0] <= x1 + m) & (lm[:, 1] >= y0 - m) & (lm[:, 1] <= y1 + m)).all()
    )
    eyes_y = lm[36:48, 1].mean()
    mouth_y = lm[48:68, 1].mean()
    nose_y = lm[30, 1]
    assert eyes_y < nose_y < mouth_y
    assert lm[8, 1] > mouth_y  # chin below the mouth
    # Subject's right eye (36-41) appears on the image left for a frontal face.
    assert lm[36:42, 0].mean() < lm[42:48, 0].mean()


def test_astronaut_one_face(astronaut):
    dets = detect_faces(astronaut, all_faces=True)
    assert len(dets) == 1
    d = dets[0]
    assert d.method == "hog" and d.score > 0
    _check_plausible(d, 512, 512)


def test_grace_hopper_one_face(grace):
    d = detect_landmarks(grace)
    H, W = grace.size
    _check_plausible(d, H, W)
    assert d.area > 0.1 * H * W  # a portrait: the face is big


def test_accepts_uint8_and_batched(astronaut):
    a = detect_landmarks(astronaut[None])
    b = detect_landmarks((astronaut * 255).round().to(torch.uint8).numpy())
    assert torch.allclose(a.lmk_px, b.lmk_px)


def test_no_face_flat_raises():
    flat = torch.full((240, 240, 3), 0.5)
    with pytest.raises(NoFaceError, match=r"no face found in flat.png: .*dlib"):
        detect_landmarks(flat, name="flat.png")
    assert detect_faces(flat) == []


def test_no_face_coffee_raises():
    li = load_image(skimage_data.coffee())
    with pytest.raises(NoFaceError, match=r"no face found in <array>"):
        detect_landmarks(li)


def test_two_faces_largest_first(astronaut, grace):
    # Grace Hopper's face (~215 px) is larger than the astronaut's (~90 px).
    g = grace.image[:512, :]  # (512, 512, 3)
    both = torch.cat([astronaut, g], dim=1)
    dets = detect_faces(both, all_faces=True)
    assert len(dets) == 2
    assert dets[0].area > dets[1].area
    assert float(dets[0].box_xyxy[0]) >= 512  # the larger face is Grace's, on the right
    single = detect_faces(both)
    assert len(single) == 1 and torch.equal(single[0].box_xyxy, dets[0].box_xyxy)


def test_mirrored_input_gives_mirrored_landmarks(astronaut):
    W = astronaut.shape[1]
    d = detect_landmarks(astronaut)
    dm = detect_landmarks(mirror_image_x(astronaut))
    back = mirror_points_px(dm.lmk_px, W)[list(IBUG68_MIRROR)]
    err = (back - d.lmk_px).norm(dim=-1)
    assert float(err.mean()) < 3.0, err.mean()
    assert float(err.max()) < 8.0


def test_stage_selection_and_timings(astronaut):
    t: dict[str, float] = {}
    dets = detect_faces(astronaut, stages=PLAIN_HOG, timings=t)
    assert len(dets) == 1 and set(t) == {"hog", "landmarks"} and all(v >= 0 for v in t.values())
    with pytest.raises(ValueError, match="unknown stages"):
        detect_faces(astronaut, stages=("hog", "magic"))
    assert "cnn" in DLIB_STAGES


def test_mirrored_hog_stage_box(astronaut):
    a = detect_faces(astronaut, stages=("hog-upsampled",))[0]
    m = detect_faces(astronaut, stages=("hog-mirrored",))[0]
    assert m.method == "hog-mirrored"
    # the mirrored detection's box, mapped back, lies on the face found directly
    ix = min(a.box_xyxy[2], m.box_xyxy[2]) - max(a.box_xyxy[0], m.box_xyxy[0])
    assert float(ix) > 0.7 * float(a.box_xyxy[2] - a.box_xyxy[0])


def test_cnn_stage_on_profile_crop(grace):
    # The CNN fallback alone finds the face and gives sensible landmarks.
    small = torch.nn.functional.interpolate(grace.image.permute(2, 0, 1)[None], scale_factor=0.5, mode="area")
    img = small[0].permute(1, 2, 0).contiguous()
    d = detect_faces(img, stages=("cnn",))[0]
    assert d.method == "cnn"
    _check_plausible(d, img.shape[0], img.shape[1])


def test_centre_fallback_accepts_tight_crop_rejects_flat(grace):
    H, W = grace.size
    d = detect_faces(grace, stages=("hog",))[0]
    x0, y0, x1, y1 = d.box_xyxy.tolist()
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, 1.9 * (x1 - x0)
    crop = grace.image[int(cy - s / 2) : int(cy + s / 2), int(cx - s / 2) : int(cx + s / 2)]
    fc = detect_faces(crop, stages=("fallback-centre",))
    assert len(fc) == 1 and fc[0].method == "fallback-centre" and fc[0].score >= 0.6
    _check_plausible(fc[0], crop.shape[0], crop.shape[1])
    assert (
        detect_faces(torch.full((200, 200, 3), 0.3), stages=("fallback-centre", "fallback-lowthresh")) == []
    )


def test_bad_inputs():
    with pytest.raises(ShapeError, match=r"detect_faces\(\): image must be \(H, W, 3\)"):
        detect_faces(torch.zeros(10, 10))
    with pytest.raises(ValueError, match="unknown backend"):
        detect_faces(torch.zeros(10, 10, 3), backend="opencv")


def test_face_alignment_backend_clear_error(monkeypatch, tmp_path):
    # Point torch hub at an empty folder: the backend must refuse quickly, never download.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    with pytest.raises(BackendUnavailableError, match=r"face.alignment|face_alignment"):
        detect_faces(torch.zeros(32, 32, 3), backend="face_alignment")


def test_face_alignment_checkpoint_lookup(monkeypatch, tmp_path):
    from recon3d.detect import fa_backend

    monkeypatch.setattr(fa_backend.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(fa_backend, "_checkpoint_dir", lambda: tmp_path)
    with pytest.raises(BackendUnavailableError, match=r"missing .*2DFAN4.*s3fd"):
        fa_backend.face_alignment_checkpoints()
    (tmp_path / "2DFAN4-cd938726ad.zip").write_bytes(b"x")  # pre-1.6 name: not the one used
    with pytest.raises(BackendUnavailableError, match=r"missing .*2DFAN4_1.6"):
        fa_backend.face_alignment_checkpoints()
    (tmp_path / "2DFAN4_1.6-c827573f02.zip").write_bytes(b"x")
    (tmp_path / "s3fd-619a316812.pth").write_bytes(b"x")
    found = fa_backend.face_alignment_checkpoints()
    assert found["s3fd"].name.startswith("s3fd-") and found["2DFAN4"].name == "2DFAN4_1.6-c827573f02.zip"


def test_aflw_sample_profile_found(shared_dir):
    import scipy.io as sio

    d = shared_dir / "aflw2000-3d-dev"
    mats = sorted(d.glob("*.mat"))
    if not mats:
        pytest.skip("../shared/aflw2000-3d-dev not present")
    # Pick the largest-|yaw| image among the first 40 and require the chain to find it.
    yaws = [(abs(float(sio.loadmat(m)["Pose_Para"][0, 1])), m) for m in mats[:40]]
    _, m = max(yaws, key=lambda t: t[0])
    gt = sio.loadmat(m)["pt3d_68"][:2].T
    det = detect_landmarks(load_image(m.with_suffix(".jpg")))
    cx, cy = det.box_xyxy.view(2, 2).mean(0).tolist()
    assert gt[:, 0].min() - 20 < cx < gt[:, 0].max() + 20 and gt[:, 1].min() - 20 < cy < gt[:, 1].max() + 20


@pytest.mark.parametrize("k", [1, 3])
def test_photo_on_its_side_is_found_by_the_rotation_retry(astronaut, k):
    """A photo turned by 90 degrees (no EXIF to undo it) is found in a turned copy; landmarks come
    back in the input's pixels and the regressor's roll changes by the turn."""
    import numpy as np

    img = astronaut.numpy() if isinstance(astronaut, torch.Tensor) else np.asarray(astronaut)
    up = detect_faces(img, backend="recon3d")[0]
    H, W = img.shape[:2]
    turned = np.ascontiguousarray(np.rot90(img, k))
    assert detect_faces(turned, backend="recon3d", rotations=()) == []  # the upright chain alone misses it
    d = detect_faces(turned, backend="recon3d")[0]
    assert d.method.endswith(f"+rot{(4 - k) * 90}")
    # the upright landmarks, moved into the turned photo
    x, y = up.lmk_px[:, 0].numpy(), up.lmk_px[:, 1].numpy()
    expect = np.stack([y, W - 1 - x], -1) if k == 1 else np.stack([H - 1 - y, x], -1)
    err = np.linalg.norm(d.lmk_px.numpy() - expect, axis=1)
    assert np.median(err) < 4.0, err
    droll = (float(d.pose_deg[2] - up.pose_deg[2]) + 180) % 360 - 180
    assert abs(droll - (90 if k == 1 else -90)) < 5, droll


def test_very_dark_photo_is_found_by_the_equalised_retry(astronaut):
    import numpy as np

    img = (np.asarray(astronaut) * 0.03).astype(np.float32)  # a badly under-exposed photo
    assert detect_faces(img, backend="recon3d", equalize=False) == []
    d = detect_faces(img, backend="recon3d")
    assert len(d) == 1 and d[0].method.endswith("+eq")
    up = detect_faces(astronaut, backend="recon3d")[0]
    assert float((d[0].lmk_px - up.lmk_px).norm(dim=1).median()) < 4.0
