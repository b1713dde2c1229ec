"""End-to-end tests of the reconstruct pipeline (library API and CLI) on bundled public-domain photos."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines import reconstruct as cli
from recon3d.conventions import IBUG68_MIRROR, mirror_points_px
from recon3d.reconstruct import ReconstructConfig, reconstruct, save_reconstruction

FAST = ReconstructConfig(fast=True, texture_size=256)


def _astronaut() -> np.ndarray:
    from skimage.data import astronaut

    return astronaut()


def _grace() -> str:
    import matplotlib.cbook as cbook

    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _nme(a: np.ndarray, b: np.ndarray) -> float:
    w, h = b.max(0) - b.min(0)
    return float(np.linalg.norm(a - b, axis=1).mean() / math.sqrt(w * h))


@pytest.fixture(scope="module")
def astro():
    return reconstruct(_astronaut(), config=FAST, name="astronaut")


@pytest.fixture(scope="module")
def astro_mirrored():
    return reconstruct(np.ascontiguousarray(_astronaut()[:, ::-1]), config=FAST, name="astronaut_m")


def test_obj_references_existing_texture(astro, tmp_path):
    files = save_reconstruction(astro, tmp_path / "astronaut", formats=["obj", "glb", "ply"])
    names = {f.name for f in files}
    for n in ("astronaut.obj", "astronaut.mtl", "astronaut_texture.png", "astronaut.json", "astronaut.glb",
              "astronaut.ply", "astronaut_overlay.png", "astronaut_landmarks.txt", "astronaut_texture_visible.png"):
        assert n in names, n
    obj = (tmp_path / "astronaut" / "astronaut.obj").read_text().splitlines()
    n_v = sum(1 for line in obj if line.startswith("v "))
    n_vt = sum(1 for line in obj if line.startswith("vt "))
    faces = [line.split()[1:] for line in obj if line.startswith("f ")]
    assert n_v == astro.model.n_verts and n_vt > 0 and len(faces) == astro.model.faces.shape[0]
    idx = np.array([[int(c.split("/")[1]) for c in f] for f in faces])
    assert idx.min() >= 1 and idx.max() <= n_vt
    mtl = (tmp_path / "astronaut" / "astronaut.mtl").read_text()
    tex_name = [line.split()[1] for line in mtl.splitlines() if line.startswith("map_Kd")][0]
    tex = Image.open(tmp_path / "astronaut" / tex_name)
    assert tex.size == (256, 256)
    params = json.loads((tmp_path / "astronaut" / "astronaut.json").read_text())
    assert set(params["pose_deg"]) == {"yaw", "pitch", "roll"}
    assert params["model"]["name"] and len(params["landmarks_px"]) == 68


def test_reprojected_landmarks_agree_with_detected(astro):
    # stated tolerance: NME (sqrt(w*h) of the detected box) below 4 %
    nme = _nme(astro.fit.lmk_px[0].numpy(), astro.lmk_detected_px.numpy())
    assert nme < 0.04, nme


def test_astronaut_pose_is_near_frontal(astro):
    p = astro.pose_deg
    assert abs(p["yaw"]) < 25 and abs(p["roll"]) < 20


def test_completed_texture_has_no_holes_in_layout(astro):
    from recon3d.texture import uv_raster

    uvr = uv_raster(astro.model, resolution=astro.texture.shape[0])
    inside = uvr.mask
    tex = astro.texture
    assert torch.isfinite(tex).all()
    dark = (tex[inside].max(-1).values < 0.02).float().mean().item()
    assert dark < 0.001, f"{dark:.4%} of layout texels are black"
    # the visible-only texture really has holes (the far side / unseen parts), so completion did work
    assert (astro.texture_mask[inside] <= 0).float().mean() > 0.05


def test_texture_is_skin_coloured_where_visible(astro):
    vis = astro.texture_mask > 0.5
    mean = astro.texture[vis].mean(0)
    assert mean[0] > mean[2] and mean[0] > 0.3


def test_mirrored_input_gives_mirrored_result(astro, astro_mirrored):
    a, m = astro.pose_deg, astro_mirrored.pose_deg
    assert abs(a["yaw"] + m["yaw"]) < 4.0
    assert abs(a["roll"] + m["roll"]) < 4.0
    assert abs(a["pitch"] - m["pitch"]) < 4.0
    W = _astronaut().shape[1]
    mirrored_back = mirror_points_px(astro_mirrored.fit.lmk_px[0], W)[list(IBUG68_MIRROR)]
    assert _nme(mirrored_back.numpy(), astro.fit.lmk_px[0].numpy()) < 0.02


def test_grace_hopper_reconstructs():
    rec = reconstruct(_grace(), config=ReconstructConfig(fast=True, texture_size=128, photometric=False))
    assert rec.name == "grace_hopper"
    assert _nme(rec.fit.lmk_px[0].numpy(), rec.lmk_detected_px.numpy()) < 0.05


# ------------------------------------------------------------------------------------------ CLI
CLI_FAST = ["--fast", "--no-photometric", "--texture-size", "128", "-q"]


def _write_inputs(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    ast = _astronaut()
    out = {}
    out["good"] = d / "good.png"
    Image.fromarray(ast).save(out["good"])
    out["noface"] = d / "noface.png"
    Image.fromarray(np.full((200, 300, 3), 127, np.uint8)).save(out["noface"])
    out["empty"] = d / "empty.jpg"
    out["empty"].write_bytes(b"")
    out["text"] = d / "notes.jpg"
    out["text"].write_text("this is not an image")
    buf = io.BytesIO()
    Image.fromarray(ast).save(buf, format="JPEG")
    out["trunc"] = d / "truncated.jpg"
    out["trunc"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    return out


def test_cli_batch_continues_past_bad_files(tmp_path, capsys):
    inp = _write_inputs(tmp_path / "in")
    rc = cli.main([str(tmp_path / "in"), "--out", str(tmp_path / "out"), *CLI_FAST])
    assert rc == 1
    err = capsys.readouterr().err
    for bad in ("noface", "empty", "notes", "truncated"):
        assert f"FAILED {bad}" in err, err
    assert "no face found" in err
    assert (tmp_path / "out" / "good" / "good.obj").is_file()
    assert not (tmp_path / "out" / "noface").exists()
    # nothing half-written left behind
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".") and p.name != ".done"]
    assert not [p for p in (tmp_path / "out" / ".done").iterdir() if p.name.startswith(".")]
    assert sorted(p.stem for p in (tmp_path / "out" / ".done").iterdir()) == ["good"]  # markers of the done only
    del inp


def test_cli_resume_skips_finished(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(_astronaut()).save(img)
    assert cli.main([str(img), "--out", str(tmp_path / "o"), *CLI_FAST]) == 0
    mtime = (tmp_path / "o" / "a" / "a.json").stat().st_mtime
    capsys.readouterr()
    assert cli.main([str(img), "--out", str(tmp_path / "o"), "--resume", "--fast", "--no-photometric",
                     "--texture-size", "128"]) == 0
    assert "1 skipped" in capsys.readouterr().out
    assert (tmp_path / "o" / "a" / "a.json").stat().st_mtime == mtime


def test_cli_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["x.png", "--export", "fbx"])
    assert e.value.code == 2
    assert cli.main([]) == 2
    assert cli.main([str(tmp_path / "missing.png"), "--out", str(tmp_path), "-q"]) == 1


def test_cli_user_landmarks_and_grayscale(tmp_path):
    from recon3d.detect import detect_landmarks

    gray = (np.asarray(Image.fromarray(_astronaut()).convert("L")))
    p = tmp_path / "gray.png"
    Image.fromarray(gray).save(p)
    det = detect_landmarks(_astronaut())
    lm = tmp_path / "gray.npy"
    np.save(lm, det.lmk_px.numpy())
    rc = cli.main([str(p), "--landmarks", str(lm), "--out", str(tmp_path / "o"), *CLI_FAST])
    assert rc == 0
    params = json.loads((tmp_path / "o" / "gray" / "gray.json").read_text())
    assert params["detection_method"] == "user"


def test_cli_several_faces_largest_by_default_and_all_faces(tmp_path):
    ast = _astronaut()
    small = np.asarray(Image.fromarray(ast).resize((400, 400)))
    canvas = np.full((512, 912, 3), 200, np.uint8)
    canvas[:, :512] = ast
    canvas[56:456, 512:] = small
    p = tmp_path / "two.png"
    Image.fromarray(canvas).save(p)
    assert cli.main([str(p), "--out", str(tmp_path / "o"), *CLI_FAST]) == 0
    params = json.loads((tmp_path / "o" / "two" / "two.json").read_text())
    xs = np.array(params["landmarks_px"])[:, 0]
    assert xs.mean() < 512  # the larger face is on the left
    assert cli.main([str(p), "--out", str(tmp_path / "o2"), "--all-faces", *CLI_FAST]) == 0
    assert sorted(d.name for d in (tmp_path / "o2").iterdir()) == [".done", "index.jsonl", "two_face0", "two_face1"]


def _changed_uv_generator(path):
    from recon3d.nn import NETWORKS, save_network
    from recon3d.nn.uv_generator import UVGenerator

    net = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2).eval()
    torch.nn.init.normal_(net.to_rgb.weight, std=0.2)
    torch.nn.init.constant_(net.to_rgb.bias, 0.3)  # a generator that visibly changes what it completes
    save_network(net, path, NETWORKS["uv_generator"], half=False)
    return path


def test_texture_net_changes_only_the_texels_the_photo_does_not_show(astro, tmp_path):
    w = _changed_uv_generator(tmp_path / "g.safetensors")
    cfg = ReconstructConfig(fast=True, texture_size=256, texture_method="net", uv_generator=str(w))
    net = reconstruct(_astronaut(), config=cfg, name="astronaut")
    seen = astro.texture_mask > 0
    assert seen.float().mean() > 0.1
    # two runs of the same fit differ by float-order noise (up to 1.2e-4 seen on this 2-thread CPU); the network's
    # changes in the hole are 100x that (mean > 0.02 below)
    torch.testing.assert_close(net.texture[seen], astro.texture[seen], atol=1e-3, rtol=0)
    from recon3d.texture import uv_raster

    hole = uv_raster(astro.model, resolution=256).mask & ~seen
    assert (net.texture[hole] - astro.texture[hole]).abs().mean() > 0.02
    with pytest.raises(ValueError, match="texture_method must be one of poisson, net"):
        ReconstructConfig(texture_method="gan")


def test_cli_texture_net_flags(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(_astronaut()).save(img)
    w = _changed_uv_generator(tmp_path / "g.safetensors")
    assert cli.main([str(img), "--out", str(tmp_path / "o"), *CLI_FAST, "--texture", "net", "--uv-generator", str(w)]) == 0
    assert json.loads((tmp_path / "o" / "a" / "a.json").read_text())["batch"]["texture"] == "net"
    capsys.readouterr()
    assert cli.main([str(img), "--out", str(tmp_path / "o2"), *CLI_FAST, "--texture", "net",
                     "--uv-generator", str(tmp_path / "none.safetensors")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --texture net:"), err
    assert not (tmp_path / "o2" / "a").exists()
    with pytest.raises(SystemExit) as e:
        cli.main([str(img), "--texture", "gan"])
    assert e.value.code == 2
