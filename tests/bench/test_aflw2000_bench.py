"""bench/aflw2000.py on a tiny synthetic folder (no ../shared data): the re-annotated column and --json.

Detection and fitting are replaced by a fake that returns the re-annotated points, so the
re-annotated column must read 0 and the ``pt3d_68`` column a known positive value.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
YAWS = (10.0, -45.0, 75.0)  # one image per |yaw| bin; the last has no re-annotated points


def _bench():
    name = "_bench_aflw2000"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "aflw2000.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def _pt3d() -> np.ndarray:
    """(68, 2) points spread over a 40 x 50 px box."""
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.stack([32 + 20 * np.cos(t), 32 + 25 * np.sin(3 * t)], 1)


def _reannotated(pt3d: np.ndarray) -> np.ndarray:
    """1.5x the pt3d points about their centre: its own box differs from the pt3d box."""
    c = pt3d.mean(0)
    return c + 1.5 * (pt3d - c)


@pytest.fixture()
def aflw_dir(tmp_path):
    d = tmp_path / "aflw"
    d.mkdir()
    P = _pt3d()
    for i, yaw in enumerate(YAWS):
        Image.fromarray(np.full((64, 64, 3), 60 + 40 * i, np.uint8)).save(d / f"image{i:05d}.jpg")
        pt3d_68 = np.concatenate([P.T, np.zeros((1, 68))], 0)
        pose = np.array([[0.05, np.radians(yaw), -0.02, 0, 0, 0, 1]])
        sio.savemat(d / f"image{i:05d}.mat", {"pt3d_68": pt3d_68, "Pose_Para": pose})
    R = _reannotated(P)
    np.savez(d / "reannotated_pts68.npz", names=np.array(["image00000", "image00001"]),
             pts68=np.stack([R.T, R.T]).astype(np.float32))
    return d


@pytest.fixture()
def fake_chain(monkeypatch):
    """Detector and fit both return the re-annotated points."""
    import recon3d.detect
    import recon3d.reconstruct

    pred = torch.tensor(_reannotated(_pt3d()), dtype=torch.float32)
    models_seen: list = []

    def detect_faces(image, backend=None, **kw):
        return [SimpleNamespace(lmk_px=pred.clone(), method="fake", pose_deg=torch.tensor([1.0, 2.0, 3.0]),
                                landmarks_3d=None)]

    def reconstruct_all(loaded, landmarks=None, config=None, landmarks_3d=None, model=None):
        models_seen.append(model)
        fit = SimpleNamespace(lmk_px=pred[None].clone(), pose_deg=torch.tensor([[4.0, 5.0, 6.0]]), face_mask=None)
        return [SimpleNamespace(fit=fit)]

    monkeypatch.setattr(recon3d.detect, "detect_faces", detect_faces)
    monkeypatch.setattr(recon3d.reconstruct, "reconstruct_all", reconstruct_all)
    return models_seen


def test_nme_box_of_uses_the_given_box():
    b = _bench()
    gt = np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 10.0], [0.0, 10.0]])
    assert b.nme_box_of(gt + [3.0, 4.0], gt, gt) == pytest.approx(0.25)
    assert b.nme_box_of(gt + [3.0, 4.0], gt, gt * 2) == pytest.approx(0.125)


def test_standard_pose_protocol_round_trip_and_filter():
    b = _bench()
    rng = np.random.default_rng(0)
    gt = rng.uniform([-89, -60, -60], [89, 60, 60], (200, 3))
    # the mapping back into AFLW's convention inverts the mapping into recon3d's
    assert np.allclose(b.recon3d_to_aflw_ypr(b.aflw_to_recon3d_ypr(gt)), gt, atol=1e-8)
    # a prediction equal to the truth scores 0; a 5-degree yaw error scores 5 on yaw only (near frontal)
    err, keep = b.standard_pose_mae(b.aflw_to_recon3d_ypr(gt), gt)
    assert keep.all() and err.max() < 1e-6
    front = np.array([[10.0, 5.0, -3.0]])
    err, _ = b.standard_pose_mae(b.aflw_to_recon3d_ypr(front + [5.0, 0, 0]), front)
    assert err[0] == pytest.approx([5.0, 0.0, 0.0], abs=0.5) and err[0, 0] > 4.5
    # the papers' filter drops any image with one |angle| beyond 99 degrees, and wraps at 360
    gt2 = np.array([[80.0, -92.0, -103.0], [20.0, 5.0, 0.0], [-3.0, 99.0, -99.0]])
    err, keep = b.standard_pose_mae(b.aflw_to_recon3d_ypr(gt2), gt2)
    assert keep.tolist() == [False, True, True]
    assert (err[keep] < 1e-6).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # constant fake poses
def test_reannotated_column_and_json(aflw_dir, fake_chain, tmp_path, capsys):
    b = _bench()
    out = tmp_path / "out.json"
    assert b.main([str(aflw_dir), "--detector", "recon3d", "--no-photometric", "--threads", "1",
                   "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 images without them" in text
    rows = json.loads(out.read_text())["recon3d"]
    assert [r["name"] for r in rows] == [f"image{i:05d}.jpg" for i in range(3)]
    assert [r["yaw_bin"] for r in rows] == ["[0,30]", "[30,60]", "[60,90]"]
    P, R = _pt3d(), _reannotated(_pt3d())
    # predicted = re-annotated points: 0 in that column, the known offset / pt3d box in the other
    expect_pt3d = float(np.linalg.norm(R - P, axis=1).mean() / np.sqrt(40 * 50))
    for r in rows:
        assert r["ok"]
        assert np.allclose(r["lmk_det_px"], R, atol=1e-3) and np.allclose(r["lmk_fit_px"], R, atol=1e-3)
        assert np.allclose(r["gt_pt3d_px"], P, atol=1e-3)
        assert r["nme_fit"] == pytest.approx(expect_pt3d, rel=1e-3) and r["nme_fit"] > 0.05
        assert r["ypr"] == [4.0, 5.0, 6.0] and r["ypr_det"] == [1.0, 2.0, 3.0]
        assert len(r["gt_ypr_recon3d"]) == 3
    for r in rows[:2]:
        assert r["has_reannotated"] and np.allclose(r["gt_re_px"], R, atol=1e-3)
        assert r["nme_det_re"] == pytest.approx(0, abs=1e-6) and r["nme_fit_re"] == pytest.approx(0, abs=1e-6)
    last = rows[2]
    assert not last["has_reannotated"] and last["gt_re_px"] is None and "nme_fit_re" not in last
    # the summary: the re-annotated column leaves out only the image it lacks
    summ = b._report(rows, "recon3d")
    assert summ["no_reannotated"] == 1 and summ["no_result"] == 0
    assert summ["nme_fit_re"][0] == pytest.approx(0, abs=1e-6)
    assert np.isnan(summ["nme_fit_re"][3])  # the (60,90] image lacks the points
    assert summ["nme_fit"][3] == pytest.approx(expect_pt3d, rel=1e-3)
    assert summ["pose_mae_fit_standard"] > 0 and summ["pose_mae_detector_standard"] > 0
    # --from-json re-prints the same tables
    assert b.main(["x", "--from-json", str(out)]) == 0
    assert "1 images without them" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_no_npz_no_column(aflw_dir, fake_chain, tmp_path, capsys):
    (aflw_dir / "reannotated_pts68.npz").unlink()
    b = _bench()
    out = tmp_path / "out.json"
    assert b.main([str(aflw_dir), "--no-photometric", "--threads", "1", "--json", str(out)]) == 0
    assert "none for these images" in capsys.readouterr().out
    rows = json.loads(out.read_text())["recon3d"]
    assert all(not r["has_reannotated"] and "nme_det_re" not in r for r in rows)
    assert b.main([str(aflw_dir), "--reannotated", str(aflw_dir / "missing.npz")]) == 2


def test_model_option(aflw_dir, fake_chain, tmp_path, capsys):
    """--model reaches every fit; a file that is not a model is a one-line error and exit 2."""
    from recon3d.assets import resolve
    from recon3d.morphable.default import DEFAULT_MODEL_NAME

    b = _bench()
    assert b.main([str(aflw_dir), "--no-photometric", "--threads", "1"]) == 0
    assert fake_chain == [None] * 3
    fake_chain.clear()
    assert b.main([str(aflw_dir), "--no-photometric", "--threads", "1", "--model", str(resolve(DEFAULT_MODEL_NAME))]) == 0
    assert len(fake_chain) == 3 and all(m is not None and m.lmk_faces.shape == (68,) for m in fake_chain)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    capsys.readouterr()
    assert b.main([str(aflw_dir), "--model", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err
