"""``python -m pipelines.restore`` and the ``--restore`` hooks of reconstruct and rotate, in-process,
with tiny random-weight restorers (``tiny_restorers``) and the blurred astronaut."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from toy_cli import FAST, fake_detect, toy_landmarks, write_image

import recon3d.edit.restore
import recon3d.reconstruct
from pipelines import reconstruct as rec_cli
from pipelines import restore as cli
from pipelines import rotate as rot_cli
from recon3d.morphable.model import save_model
from recon3d.morphable.toy import make_toy_model


@pytest.fixture(scope="module")
def files(tmp_path_factory, blurred_astronaut) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("restore_in")
    f = {"astro": d / "astro.png", "crop": d / "crop.png", "text": d / "text.png", "flat": d / "flat.png",
         "thin": d / "thin.png", "dir": d}
    Image.fromarray(blurred_astronaut).save(f["astro"])
    Image.fromarray(blurred_astronaut[70:180, 170:280]).resize((40, 40)).save(f["crop"])
    f["text"].write_text("not an image")
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(f["flat"])
    Image.fromarray(np.zeros((40, 2000, 3), np.uint8)).save(f["thin"])
    return f


def _run(capsys, argv):
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "unexpected" not in err, err
    return rc, out, err


def test_restore_writes_png_and_record(files, tiny_restorers, tmp_path, capsys, blurred_astronaut):
    out = tmp_path / "out"
    rc, stdout, _ = _run(capsys, [str(files["astro"]), "--weights", str(tiny_restorers["blind"]), "--out", str(out)])
    assert rc == 0 and "1 face(s)" in stdout
    img = np.asarray(Image.open(out / "astro.png"))
    assert img.shape == blurred_astronaut.shape
    rec = json.loads((out / "astro.json").read_text())
    assert rec["output"] == "astro.png" and rec["scale"] == 1 and len(rec["faces"]) == 1
    assert {"identity_cosine", "box_xyxy", "paste_box_xyxy"} <= set(rec["faces"][0]) and "restore" in rec["timings"]
    row = json.loads((out / "index.jsonl").read_text().splitlines()[-1])
    assert row["status"] == "ok" and row["n_faces"] == 1

    mtime = (out / "astro.png").stat().st_mtime_ns  # --resume skips the finished item
    rc, stdout, _ = _run(capsys, [str(files["astro"]), "--weights", str(tiny_restorers["blind"]), "--out", str(out),
                                  "--resume"])
    assert rc == 0 and "1 skipped" in stdout and (out / "astro.png").stat().st_mtime_ns == mtime


def test_scale_and_aligned(files, tiny_restorers, tmp_path, capsys):
    w = str(tiny_restorers["blind"])
    rc, _, _ = _run(capsys, [str(files["astro"]), "--scale", "2", "--no-identity", "--weights", w, "--out",
                             str(tmp_path / "s2"), "-q"])
    assert rc == 0 and Image.open(tmp_path / "s2" / "astro.png").size == (1024, 1024)
    rc, _, _ = _run(capsys, [str(files["crop"]), "--aligned", "--scale", "2", "--weights", w, "--out",
                             str(tmp_path / "al"), "-q"])
    assert rc == 0 and Image.open(tmp_path / "al" / "crop.png").size == (80, 80)
    assert json.loads((tmp_path / "al" / "crop.json").read_text())["aligned"] is True


def test_reference(files, tiny_restorers, tmp_path, capsys):
    rc, _, _ = _run(capsys, [str(files["astro"]), "--reference", str(files["astro"]), "--weights",
                             str(tiny_restorers["ref"]), "--out", str(tmp_path / "ref"), "-q", "--no-identity"])
    assert rc == 0 and json.loads((tmp_path / "ref" / "astro.json").read_text())["reference"] is True


BAD = {  # name: (argv after the inputs, inputs, exit code, message fragment)
    "missing": ([], ["missing.png"], 1, "input not found"),
    "not-an-image": ([], ["text"], 1, "not an image"),
    "no-face": ([], ["flat"], 1, "no face found"),
    "too-elongated": ([], ["thin"], 1, "too elongated"),
    "aligned-not-square": (["--aligned"], ["thin"], 1, "square"),
    "scale-0": (["--scale", "0"], ["astro"], 2, "--scale"),
    "scale-huge": (["--scale", "99"], ["astro"], 2, "--scale"),
    "weights-missing": (["--weights", "nope.safetensors"], ["astro"], 1, "not found"),
    "reference-missing": (["--reference", "nope.jpg"], ["astro"], 1, "--reference"),
    "reference-for-blind-model": (["--reference", "astro"], ["astro"], 2, "takes no reference"),
    "nothing": ([], [], 2, "at least one input"),
    "device": (["--device", "banana"], ["astro"], 2, "--device"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs(case, files, tiny_restorers, tmp_path, capsys):
    opts, inputs, code, fragment = BAD[case]
    opts = [str(files[o]) if o in files else o for o in opts]
    if "--weights" not in opts:
        opts += ["--weights", str(tiny_restorers["blind"])]
    argv = [str(files[i]) if i in files else i for i in inputs] + opts + ["--out", str(tmp_path / "o"), "-q"]
    if not inputs:
        argv = ["--out", str(tmp_path / "o")]
    rc, _, err = _run(capsys, argv)
    assert rc == code, (rc, err)
    assert fragment in err, err


def _fake_restore_detect(lm):
    one = torch.as_tensor(lm, dtype=torch.float32)
    box = torch.cat([one.min(0).values, one.max(0).values])
    return lambda img, backend=None, all_faces=False, **kw: [types.SimpleNamespace(lmk_px=one, box_xyxy=box,
                                                                                  method="fake")]


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    """The toy model and a 64 x 64 image whose 'detected' landmarks fit it (both detectors faked)."""
    m = make_toy_model()
    save_model(m, tmp_path / "toy.npz")
    lm = toy_landmarks(m)
    monkeypatch.setattr(recon3d.reconstruct, "detect_faces", fake_detect(lm))
    monkeypatch.setattr(recon3d.edit.restore, "detect_faces", _fake_restore_detect(lm))
    return tmp_path / "toy.npz", write_image(tmp_path / "good.png")


def test_reconstruct_restore_unwraps_the_restored_photo(toy, tiny_restorers, tmp_path):
    model, img = toy
    out = tmp_path / "rec"
    args = [*FAST, str(img), "--model", str(model), "--out", str(out)]
    assert rec_cli.main([*args, "--restore", "--restore-weights", str(tiny_restorers["blind"])]) == 0
    used = np.asarray(Image.open(out / "good" / "good_input.png"))
    assert np.abs(used.astype(int) - np.asarray(Image.open(img))).max() > 0  # the restored photo
    assert json.loads((out / "good" / "good.json").read_text())["batch"]["restored"] is True
    assert rec_cli.main([*args, "--restore", "--restore-weights", "nope.safetensors", "--resume"]) == 1


def test_rotate_restore_refines_the_views(toy, tiny_restorers, tmp_path):
    model, img = toy
    base = ["--fast", "--texture-size", "32", "-q", str(img), "--model", str(model), "--yaw", "20", "--no-mesh"]
    assert rot_cli.main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert rot_cli.main([*base, "--out", str(tmp_path / "rest"), "--restore", "--restore-weights",
                         str(tiny_restorers["blind"])]) == 0
    name = "good/good_yaw+20_pitch+0.png"
    a, b = (np.asarray(Image.open(tmp_path / d / name)).astype(int) for d in ("plain", "rest"))
    assert a.shape == b.shape and np.abs(a - b).max() > 0
    assert json.loads((tmp_path / "rest" / "good" / "good_rotate.json").read_text())["restored"] is True
