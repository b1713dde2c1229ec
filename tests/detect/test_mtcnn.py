"""Tests for recon3d.nn.mtcnn and recon3d.detect.mtcnn_backend (MTCNN port, cascade, chain stage)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data as skimage_data
import torch

import recon3d.detect.dlib_backend as dlib_backend
import recon3d.detect.mtcnn_backend as mtcnn_backend
from recon3d.detect import CHAIN_V1_STAGES, DEFAULT_STAGES, MTCNN_STAGES, detect_faces
from recon3d.detect.mtcnn_backend import _nms, _pyramid_scales, detect_faces_mtcnn, mtcnn_box_to_dlib
from recon3d.errors import AssetError
from recon3d.nn import NETWORKS, load_network
from recon3d.nn.mtcnn import MTCNN_NETS, ONet, PNet, RNet

# The astronaut's face (scikit-image, 512 x 512): dlib's HOG box is about [179, 83, 266, 170].
ASTRONAUT_FACE = (179.0, 83.0, 266.0, 170.0)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage_data.astronaut())


def test_shipped_weights_load_into_the_three_nets():
    nets, meta = load_network(NETWORKS["mtcnn"])
    assert NETWORKS["mtcnn"] is MTCNN_NETS and "MIT" in meta["licence"]
    assert {k.split(".")[0] for k in nets.state_dict()} == {"pnet", "rnet", "onet"}
    assert nets.pnet.conv1.weight.dtype == torch.float32


def test_net_output_shapes():
    torch.manual_seed(0)
    prob, reg = PNet()(torch.zeros(2, 3, 30, 40))
    assert prob.shape == (2, 10, 15) and reg.shape == (2, 4, 10, 15)
    p, r = RNet()(torch.zeros(3, 3, 24, 24))
    assert p.shape == (3,) and r.shape == (3, 4)
    p, r, pts = ONet()(torch.zeros(3, 3, 48, 48))
    assert p.shape == (3,) and r.shape == (3, 4) and pts.shape == (3, 10)
    assert bool(((p >= 0) & (p <= 1)).all())


def test_astronaut_face_found_with_a_box_around_it(astronaut):
    dets = detect_faces_mtcnn(astronaut)
    assert len(dets) >= 1
    box, prob, pts = dets[0]
    assert prob > 0.99
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    ref = ASTRONAUT_FACE
    assert ref[0] < cx < ref[2] and ref[1] < cy < ref[3]
    assert 0.8 < (box[2] - box[0]) / (ref[2] - ref[0]) < 1.25
    # eyes above the nose above the mouth corners; the image-left eye first
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
    assert max(pts[0, 1], pts[1, 1]) < pts[2, 1] < min(pts[3, 1], pts[4, 1])
    assert all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in pts)


def test_no_face_in_flat_or_tiny_images():
    assert detect_faces_mtcnn(np.full((200, 300, 3), 128, np.uint8)) == []
    assert detect_faces_mtcnn(np.zeros((10, 10, 3), np.uint8)) == []  # smaller than one P-Net window


@pytest.mark.parametrize("bad", [np.zeros((20, 20), np.uint8), np.zeros((20, 20, 3), np.float32),
                                 np.zeros((20, 20, 4), np.uint8), torch.zeros(20, 20, 3, dtype=torch.uint8)])
def test_bad_images_raise(bad):
    with pytest.raises(ValueError, match="detect_faces_mtcnn"):
        detect_faces_mtcnn(bad)


@pytest.mark.parametrize("kw", [dict(min_face=0), dict(factor=1.0), dict(thresholds=(0.6, 0.7)),
                                dict(thresholds=(0.6, 0.7, 1.5))])
def test_bad_parameters_raise(kw):
    with pytest.raises(ValueError, match="detect_faces_mtcnn"):
        detect_faces_mtcnn(np.zeros((50, 50, 3), np.uint8), **kw)


def test_missing_weights_raise_asset_error(tmp_path, astronaut):
    with pytest.raises(AssetError):
        detect_faces_mtcnn(astronaut, weights=str(tmp_path / "missing.safetensors"))


def test_helpers():
    assert _nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    nested = np.array([[0, 0, 10, 10], [2, 2, 6, 6]], float)
    assert _nms(nested, np.array([0.9, 0.8]), 0.7).tolist() == [0, 1]          # IoU 0.16
    assert _nms(nested, np.array([0.9, 0.8]), 0.7, mode="min").tolist() == [0]  # fully inside
    assert _pyramid_scales(11, 100, 20, 0.709) == []
    b = mtcnn_box_to_dlib(np.array([100.0, 100.0, 200.0, 220.0]))
    assert b[2] - b[0] == pytest.approx(b[3] - b[1])


def test_mtcnn_stage_is_the_default_chain_s_last():
    assert DEFAULT_STAGES == MTCNN_STAGES == (*CHAIN_V1_STAGES, "mtcnn") and "mtcnn" not in CHAIN_V1_STAGES
    assert dlib_backend.DLIB_STAGES[-1] == "mtcnn"


def test_mtcnn_stage_runs_only_when_the_chain_fails(astronaut, monkeypatch):
    calls = []
    real = mtcnn_backend.detect_faces_mtcnn

    def spy(img, **kw):
        calls.append(img.shape)
        return real(img, **kw)

    monkeypatch.setattr(mtcnn_backend, "detect_faces_mtcnn", spy)
    # the chain finds the face: the MTCNN stage never runs
    d = detect_faces(astronaut)
    assert d[0].method == "hog" and calls == []
    # every earlier stage fails (mocked): the MTCNN box seeds the shape predictor
    monkeypatch.setattr(dlib_backend, "_hog", lambda: type("H", (), {"run": staticmethod(lambda *a: ([], [], []))})())
    monkeypatch.setattr(dlib_backend, "_cnn", lambda: (lambda img, up: []))
    monkeypatch.setattr(dlib_backend, "_refine_and_verify", lambda img, box: None)
    assert detect_faces(astronaut, stages=CHAIN_V1_STAGES, rotations=(), equalize=False) == []
    d = detect_faces(astronaut, rotations=(), equalize=False)  # default stages
    assert len(calls) == 1 and d[0].method == "mtcnn"
    ref = ASTRONAUT_FACE
    x0, y0, x1, y1 = d[0].box_xyxy.tolist()
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    assert ref[0] < cx < ref[2] and ref[1] < cy < ref[3]
    lm = d[0].lmk_px
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean()
    assert bool(((lm[:, 0] > ref[0] - 20) & (lm[:, 0] < ref[2] + 20)).all())


def test_recon3d_backend_with_the_mtcnn_stage(astronaut, monkeypatch):
    monkeypatch.setattr(dlib_backend, "_hog", lambda: type("H", (), {"run": staticmethod(lambda *a: ([], [], []))})())
    monkeypatch.setattr(dlib_backend, "_cnn", lambda: (lambda img, up: []))
    monkeypatch.setattr(dlib_backend, "_refine_and_verify", lambda img, box: None)
    d = detect_faces(astronaut, backend="recon3d", stages=MTCNN_STAGES, rotations=(), equalize=False)
    assert d[0].method == "mtcnn+recon3d" and d[0].landmarks_3d
