"""Bad-input matrix for every verb (reconstruct, rotate, deocclude, viewer): each case is an input,
the expected exit code and a fragment of the expected message, and never a traceback.

The verbs run in-process (``main([...])``); cases that get as far as a reconstruction use the toy
model and landmarks that fit it (``toy_cli``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from toy_cli import FAST, fake_detect, toy_landmarks, write_image

import recon3d.reconstruct
from pipelines import deocclude as deo_cli
from pipelines import reconstruct as rec_cli
from pipelines import rotate as rot_cli
from recon3d.morphable.model import save_model
from recon3d.morphable.toy import make_toy_model
from viewers import face as viewer_cli

VERBS = {"reconstruct": rec_cli, "rotate": rot_cli, "deocclude": deo_cli, "viewer": viewer_cli}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every input of the matrix, made once."""
    d = tmp_path_factory.mktemp("bad")
    m = make_toy_model()
    f = {"toy": d / "toy.npz", "good": write_image(d / "good.png"), "dir": d}
    save_model(m, f["toy"])
    lm = toy_landmarks(m)
    for name, arr in {"lm_ok": lm, "lm_outside": lm + 500, "lm_negative": -lm, "lm_huge": lm * 1e30,
                      "lm_identical": np.full((68, 2), 30.0), "lm_shuffled": lm[np.random.default_rng(1).permutation(68)],
                      "lm_complex": lm.astype(complex), "lm_short": lm[:60], "lm_3d_wrong": np.zeros((68, 4))}.items():
        f[name] = d / f"{name}.npy"
        np.save(f[name], arr)
    f["lm_text"] = d / "lm_text.txt"
    f["lm_text"].write_text("1 2\nthree 4\n")
    f["empty"] = d / "empty.png"
    f["empty"].write_bytes(b"")
    f["text_png"] = d / "text.png"
    f["text_png"].write_text("not an image")
    f["random"] = d / "random.jpg"
    f["random"].write_bytes(np.random.default_rng(0).bytes(4000))
    f["tiny"] = write_image(d / "tiny.png", size=(1, 1))
    f["thin"] = write_image(d / "thin.png", size=(20000, 1))
    f["sliver"] = write_image(d / "sliver.png", size=(2000, 40))
    f["afile"] = d / "afile.txt"
    f["afile"].write_text("x")
    # models
    base = dict(np.load(f["toy"]))

    def model(key: str, **changes) -> None:
        arrays = {**base, **changes}
        for k in [k for k, v in changes.items() if v is None]:
            arrays.pop(k)
        f[key] = d / f"{key}.npz"
        np.savez(f[key], **arrays)

    V, F = base["mean"].shape[0], base["faces"].shape[0]
    model("m_sym", sym_vertex=np.full(V, V + 5, np.int64))
    model("m_nan", mean=np.where(np.arange(V)[:, None] == 0, np.nan, base["mean"]).astype(np.float32))
    model("m_object", mean=np.array([None, 1], dtype=object))
    model("m_noname", name=None)
    model("m_intname", name=np.array(3))
    model("m_fv_str", format_version=np.array("1"))
    model("m_fv_missing", format_version=None)
    model("m_lmk", lmk_faces=np.full(68, F + 1, np.int64))
    model("m_contour", contour_verts=np.full((17, 3), V, np.int64))
    model("m_regions", region_labels=np.full(V, 9, np.int8))
    model("m_faces_float", faces=base["faces"].astype(np.float32))
    model("m_mm", mean=(base["mean"] * 1000).astype(np.float32))
    f["m_random"] = d / "m_random.npz"
    f["m_random"].write_bytes(np.random.default_rng(2).bytes(3000))
    f["m_truncated"] = d / "m_truncated.npz"
    f["m_truncated"].write_bytes(f["toy"].read_bytes()[:2000])
    f["m_zip"] = d / "m_zip.npz"
    with zipfile.ZipFile(f["m_zip"], "w") as z:
        z.writestr("hello.txt", "hi")
    # meshes for the viewer
    verts = "\n".join(f"v {x} {y} 0" for x, y in ((0, 0), (1, 0), (0, 1)))
    for name, text in {"nan.obj": verts.replace("v 1 0 0", "v nan 0 0") + "\nf 1 2 3\n",
                       "inf.obj": verts.replace("v 0 1 0", "v 0 inf 0") + "\nf 1 2 3\n",
                       "garbage.obj": "this is not a mesh\n", "ok.obj": verts + "\nf 1 2 3\n", "badindex.obj": verts + "\nf 1 2 9\n"}.items():
        f[name] = d / name
        f[name].write_text(text)
    f["random.glb"] = d / "random.glb"
    f["random.glb"].write_bytes(np.random.default_rng(3).bytes(500))
    f["nomesh"] = d / "nomesh"
    f["nomesh"].mkdir()
    (f["nomesh"] / "x.json").write_text("{}")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(d / "mask_small.png")
    f["mask_small"] = d / "mask_small.png"
    return f


def _arg(f, a):
    return str(f[a]) if a in f else a


def _batch(*args):
    return lambda f, out: [*(_arg(f, a) for a in args), "--out", str(out), "--model", str(f["toy"])]


def _model(name):
    return lambda f, out: [str(f["good"]), "--model", _arg(f, name), "--out", str(out)]


def _lm(name):
    return lambda f, out: [str(f["good"]), "--landmarks", _arg(f, name), "--out", str(out), "--model", str(f["toy"])]


def _view(*args):
    return lambda f, out: [*(str(f[a]) if a in f else a for a in args), "--screenshot", str(out / "shot.png")]


# (verb, argv, exit code, message fragment)
CASES = {
    # images, for every batch verb
    **{f"{v}-{img}": (v, _batch(img), 1, frag) for v in ("reconstruct", "rotate", "deocclude")
       for img, frag in (("empty", "empty file"), ("text_png", "not an image"), ("random", "not an image"),
                         ("tiny", "too small"), ("thin", "too small"), ("sliver", "too elongated"),
                         ("missing.png", "input not found"))},
    **{f"{v}-device-{d}": (v, _batch("good", "--device", d), 2, "--device") for v in ("reconstruct", "rotate", "deocclude")
       for d in ("banana", "cuda:7", "tpu")},
    **{f"{v}-out-is-file": (v, lambda f, out: [str(f["good"]), "--out", str(f["afile"])], 2, "is a file")
       for v in ("reconstruct", "rotate", "deocclude")},
    **{f"{v}-out-under-file": (v, lambda f, out: [str(f["good"]), "--out", str(f["afile"] / "sub")], 2,
                               "cannot create output folder") for v in ("reconstruct", "rotate", "deocclude")},
    **{f"{v}-out-in-proc": (v, lambda f, out: [str(f["good"]), "--out", "/proc/recon3d-out"], 2, "output folder")
       for v in ("reconstruct", "rotate", "deocclude")},
    **{f"{v}-max-pixels": (v, _batch("good", "--max-pixels", "100"), 1, "--max-pixels")
       for v in ("reconstruct", "rotate", "deocclude")},
    **{f"{v}-max-pixels-0": (v, _batch("good", "--max-pixels", "0"), 2, "--max-pixels")
       for v in ("reconstruct", "rotate", "deocclude")},
    **{f"{v}-{m}": (v, _model(m), 1, frag) for v in ("reconstruct", "rotate", "deocclude")
       for m, frag in (("m_sym", "'sym_vertex'"), ("m_nan", "'mean' contains NaN"), ("m_random", "not an .npz"))},
    **{f"reconstruct-{m}": ("reconstruct", _model(m), 1, frag)
       for m, frag in (("m_object", "'mean'"), ("m_noname", "'name'"), ("m_intname", "'name'"),
                       ("m_fv_str", "'format_version'"), ("m_fv_missing", "'format_version'"),
                       ("m_lmk", "'lmk_faces'"), ("m_contour", "'contour_verts'"), ("m_regions", "'region_labels'"),
                       ("m_faces_float", "'faces'"), ("m_mm", "metres"), ("m_truncated", "model file"),
                       ("m_zip", "not a recon3d morphable model"), ("missing.npz", "not found"))},
    # user landmarks
    **{f"reconstruct-{lm}": ("reconstruct", _lm(lm), 1, frag)
       for lm, frag in (("lm_outside", "outside"), ("lm_negative", "outside"), ("lm_huge", "outside"),
                        ("lm_identical", "degenerate"), ("lm_shuffled", "iBUG-68 order"), ("lm_complex", "real"),
                        ("lm_short", "68"), ("lm_3d_wrong", "(68, 2)"), ("lm_text", "two numbers"),
                        ("missing.pts", "not found"))},
    "reconstruct-landmarks-two-inputs": ("reconstruct", _batch("good", "random", "--landmarks", "x.npy"), 2, "exactly one"),
    "reconstruct-texture-size": ("reconstruct", _batch("good", "--texture-size", "3"), 2, "--texture-size"),
    "reconstruct-nothing": ("reconstruct", lambda f, out: [], 2, "at least one input"),
    "rotate-angle": ("rotate", _batch("good", "--yaw", "120"), 2, "angles"),
    "rotate-grid": ("rotate", _batch("good", "--grid-size", "2"), 2, "--grid-size"),
    "rotate-grid-huge": ("rotate", _batch("good", "--grid-size", "100000"), 2, "--grid-size"),
    "rotate-yaw-nan": ("rotate", _batch("good", "--yaw", "nan"), 2, "angles"),
    **{f"{v}-seed": (v, _batch("good", "--seed", str(2**70)), 2, "--seed") for v in ("reconstruct", "rotate", "deocclude")},
    "deocclude-threshold-nan": ("deocclude", _batch("good", "--threshold", "nan"), 2, "--threshold"),
    "deocclude-threshold-neg": ("deocclude", _batch("good", "--threshold", "-3"), 2, "--threshold"),
    "deocclude-texture-size": ("deocclude", _batch("good", "--texture-size", "3"), 2, "--texture-size"),
    "viewer-yaw-nan": ("viewer", lambda f, out: [str(f["ok.obj"]), "--yaw", "nan"], 2, "finite"),
    "deocclude-mask-missing": ("deocclude", _batch("good", "--mask", "nomask.png"), 1, "--mask"),
    "deocclude-mask-size": ("deocclude", _batch("good", "--mask", "mask_small", "--cue", "photometric"), 1, "same size"),
    "deocclude-mask-two": ("deocclude", _batch("good", "random", "--mask", "mask_small"), 2, "exactly one"),
    # the viewer
    "viewer-nan": ("viewer", _view("nan.obj"), 1, "NaN or Inf"),
    "viewer-inf": ("viewer", _view("inf.obj"), 1, "NaN or Inf"),
    "viewer-garbage": ("viewer", _view("garbage.obj"), 1, "no vertices"),
    "viewer-badindex": ("viewer", _view("badindex.obj"), 1, "out of range"),
    "viewer-random-glb": ("viewer", _view("random.glb"), 1, "random.glb"),
    "viewer-nomesh": ("viewer", _view("nomesh"), 1, "no .obj/.glb/.ply mesh"),
    "viewer-missing": ("viewer", _view("missing.obj"), 2, "does not exist"),
    "viewer-text": ("viewer", _view("afile"), 2, "expected a folder"),
    "viewer-nothing": ("viewer", lambda f, out: [], 2, "PATH is required"),
    "viewer-shot-under-file": ("viewer", lambda f, out: [str(f["ok.obj"]), "--screenshot", str(f["afile"] / "s.png")], 1,
                               "cannot create folder"),
}


@pytest.fixture()
def no_detector(monkeypatch, files):
    """Cases that get past the checks reconstruct the toy model with fixed landmarks."""
    monkeypatch.setattr(recon3d.reconstruct, "detect_faces", fake_detect(np.load(files["lm_ok"])))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, files, tmp_path, capsys, no_detector):
    verb, argv, code, fragment = CASES[case]
    args = argv(files, tmp_path / "out")
    if verb != "viewer" and args:  # the fast settings of the toy model
        args = [*(FAST if verb == "reconstruct" else ["--fast", "--texture-size", "32", "-q"]), *args]
    try:
        rc = VERBS[verb].main(args)
    except SystemExit as e:  # argparse
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    assert fragment in err, err
    assert "Traceback" not in err + out and "unexpected" not in err, err
