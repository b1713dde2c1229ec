"""CLIs pipelines.rotate and pipelines.deocclude: exit codes and outputs. ``reconstruct`` is
replaced by the synthetic reconstruction so the tests need neither a detector nor a fitted model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import recon3d.reconstruct
from pipelines import deocclude as deo_cli
from pipelines import rotate as rot_cli
from recon3d.edit import make_synthetic_reconstruction
from recon3d.errors import NoFaceError


@pytest.fixture(scope="module")
def synth():
    return make_synthetic_reconstruction(size=96, texture_size=64)


@pytest.fixture()
def fake_reconstruct(monkeypatch, synth):
    def fake(src, **kw):
        if "noface" in str(src):
            raise NoFaceError(f"no face found in {src}")
        return synth

    monkeypatch.setattr(recon3d.reconstruct, "reconstruct", fake)


@pytest.fixture()
def images(tmp_path):
    a = tmp_path / "a.png"
    b = tmp_path / "noface.png"
    for p in (a, b):
        Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(p)
    return a, b


def test_usage_errors(capsys):
    assert rot_cli.main([]) == 2
    assert deo_cli.main([]) == 2
    assert rot_cli.main(["x.png", "--yaw", "120"]) == 2
    with pytest.raises(SystemExit) as e:
        rot_cli.main(["x.png", "--yaw", "abc"])
    assert e.value.code == 2


def test_rotate_cli_writes_poses_grid_gif_mesh(fake_reconstruct, images, tmp_path):
    out = tmp_path / "out"
    rc = rot_cli.main([str(images[0]), "--yaw", "-15", "0", "15", "--frontalize", "--gif", "--grid-size", "48",
                       "--out", str(out), "-q"])
    assert rc == 0
    d = out / "a"
    for y in ("-15", "+0", "+15"):
        assert (d / f"a_yaw{y}_pitch+0.png").is_file()
        assert (d / f"a_yaw{y}_pitch+0.obj").is_file()
    assert (d / "a_frontal.png").is_file() and (d / "a_turntable.gif").is_file()
    grid = Image.open(d / "a_grid.png")
    assert grid.height == 48 and grid.width == 5 * 48  # input + 3 poses + frontal
    assert (d / "a_rotate.json").is_file()


def test_rotate_cli_batch_continues_after_failure(fake_reconstruct, images, tmp_path, capsys):
    rc = rot_cli.main([str(images[1]), str(images[0]), str(tmp_path / "missing.png"), "--yaw", "10", "--no-mesh",
                       "--out", str(tmp_path / "o"), "-q"])
    assert rc == 1
    assert (tmp_path / "o" / "a" / "a_yaw+10_pitch+0.png").is_file()
    err = capsys.readouterr().err
    assert "FAILED noface" in err and "missing.png" in err


def test_deocclude_cli(fake_reconstruct, images, tmp_path, synth):
    out = tmp_path / "d"
    assert deo_cli.main([str(images[0]), "--out", str(out), "-q"]) == 0
    for suffix in ("deoccluded", "occlusion_mask", "face_mask", "rendered"):
        assert (out / "a" / f"a_{suffix}.png").is_file()
    # a user mask is used as given
    m = np.zeros((96, 96), np.uint8)
    m[40:50, 30:60] = 255
    mp = tmp_path / "m.png"
    Image.fromarray(m).save(mp)
    assert deo_cli.main([str(images[0]), "--mask", str(mp), "--out", str(out), "-q"]) == 0
    got = np.asarray(Image.open(out / "a" / "a_occlusion_mask.png"))
    assert got.ndim == 3 and np.array_equal(got[..., 0] > 127, m > 127)
    tiny = tmp_path / "tiny_inpainter.safetensors"
    from recon3d.nn.inpaint import INPAINTER, Inpainter
    from recon3d.nn.registry import save_network

    save_network(Inpainter(res=32, widths=(4, 8, 8, 16), bottleneck=2), tiny, INPAINTER)
    for fill in ("classical", "net"):
        o = tmp_path / f"fill_{fill}"
        assert deo_cli.main([str(images[0]), "--mask", str(mp), "--fill", fill, "--inpainter", str(tiny),
                             "--out", str(o), "-q"]) == 0
        assert json.loads((o / "a" / "a_deocclude.json").read_text())["fill"] == fill
    a = np.asarray(Image.open(tmp_path / "fill_classical" / "a" / "a_deoccluded.png"))
    b = np.asarray(Image.open(tmp_path / "fill_net" / "a" / "a_deoccluded.png"))
    keep = m < 128
    assert np.array_equal(a[keep], b[keep]) and not np.array_equal(a[~keep], b[~keep])
    with pytest.raises(SystemExit) as e:
        deo_cli.main([str(images[0]), "--fill", "gan", "--out", str(out)])
    assert e.value.code == 2
    assert deo_cli.main([str(images[0]), str(images[1]), "--mask", str(mp), "--out", str(out)]) == 2
    assert deo_cli.main([str(images[1]), "--out", str(out), "-q"]) == 1


@pytest.mark.parametrize("verb", ["rotate", "deocclude"])
def test_edit_verbs_resume_from_their_done_markers_and_index_every_item(fake_reconstruct, images, tmp_path, verb,
                                                                         monkeypatch, capsys):
    from recon3d.batch import read_index

    cli = rot_cli if verb == "rotate" else deo_cli
    extra = ["--yaw", "0", "--no-mesh"] if verb == "rotate" else ["--cue", "photometric"]
    out = tmp_path / "o"
    argv = [str(images[0]), str(images[1]), "--out", str(out), "-q", *extra]
    assert cli.main(argv) == 1  # noface fails
    calls = []

    def no_face(src, **kw):
        calls.append(src)
        raise NoFaceError(f"no face found in {src}")

    monkeypatch.setattr(recon3d.reconstruct, "reconstruct", no_face)
    capsys.readouterr()
    assert cli.main([*argv, "--resume"]) == 1
    assert [str(c) for c in calls] == [str(images[1])]  # a was done: skipped; only the failed one again
    rows = read_index(out / "index.jsonl")
    assert [(r["name"], r["status"]) for r in rows] == [("a", "ok"), ("noface", "failed"), ("a", "skipped"),
                                                        ("noface", "failed")]
    assert rows[0]["pose_deg"] and rows[0]["outputs"] == [str(out / "a")]
    assert json.loads((out / ".done" / "a.json").read_text())["outputs"] == ["a"]


def test_rotate_cli_refine_net_and_bad_refiner(fake_reconstruct, images, tmp_path, capsys):
    import torch

    from recon3d.nn import NETWORKS, save_network
    from recon3d.nn.rotate_refine import RotationRefiner

    net = RotationRefiner(64, widths=(8, 16, 16, 32)).eval()
    torch.nn.init.normal_(net.to_rgb.weight, std=0.05)  # a refiner that changes something
    w = tmp_path / "ref.safetensors"
    save_network(net, w, NETWORKS["rotation_refiner"], half=False)
    out = tmp_path / "out"
    args = [str(images[0]), "--yaw", "20", "--no-mesh", "-q"]
    assert rot_cli.main(args + ["--out", str(out / "warp")]) == 0
    assert rot_cli.main(args + ["--refine", "net", "--refiner", str(w), "--out", str(out / "net")]) == 0
    rec = json.loads((out / "net" / "a" / "a_rotate.json").read_text())
    assert rec["refine"] == "net"
    a = np.asarray(Image.open(out / "warp" / "a" / "a_yaw+20_pitch+0.png"), np.float32)
    b = np.asarray(Image.open(out / "net" / "a" / "a_yaw+20_pitch+0.png"), np.float32)
    assert np.abs(a - b).max() > 2
    assert rot_cli.main(args + ["--refine", "net", "--refiner", str(tmp_path / "none.safetensors"),
                                "--out", str(out / "bad")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --refine net:")


def test_rotate_cli_texture_net(fake_reconstruct, images, tmp_path):
    import torch

    from recon3d.nn import NETWORKS, save_network
    from recon3d.nn.uv_generator import UVGenerator

    net = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2).eval()
    torch.nn.init.constant_(net.to_rgb.bias, 0.5)  # brightens whatever it completes
    w = tmp_path / "g.safetensors"
    save_network(net, w, NETWORKS["uv_generator"], half=False)
    out = tmp_path / "out"
    args = [str(images[0]), "--yaw", "60", "--no-mesh", "-q"]
    assert rot_cli.main(args + ["--out", str(out / "poisson")]) == 0
    assert rot_cli.main(args + ["--texture", "net", "--uv-generator", str(w), "--out", str(out / "net")]) == 0
    rec = json.loads((out / "net" / "a" / "a_rotate.json").read_text())
    assert rec["texture"] == "net"
    a = np.asarray(Image.open(out / "poisson" / "a" / "a_yaw+60_pitch+0.png"), np.float32)
    b = np.asarray(Image.open(out / "net" / "a" / "a_yaw+60_pitch+0.png"), np.float32)
    assert np.abs(a - b).max() > 10
