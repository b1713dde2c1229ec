"""viewers.face: off-screen screenshots (texture really shows, skin-coloured, yaw changes it), the Open3D
UV convention pin, photo-camera alignment, CLI help/errors, and the interactive window under Xvfb."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _has_open3d() -> bool:
    try:
        import open3d  # noqa: F401
    except ImportError:
        return False
    return True


needs_o3d = pytest.mark.skipif(not _has_open3d(), reason="open3d not installed (pip install -e .[viewer])")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    from viewers.face import write_demo_folder

    return write_demo_folder(tmp_path_factory.mktemp("recon") / "out", stem="face", n=64, tex_size=128)


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def _skin_fraction(img: np.ndarray) -> tuple[float, np.ndarray]:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    sat = (img.max(-1) - img.min(-1)) / np.maximum(img.max(-1), 1e-6)
    skin = (r > g) & (g > b) & (sat > 0.2) & (r > 0.35)
    return float(skin.mean()), skin


def test_demo_folder_follows_the_contract(demo_dir):
    for name in ("face.obj", "face.mtl", "face_texture.png", "face_texture_visible.png", "face_texture_mask.png",
                 "face.json", "face_input.png"):
        assert (demo_dir / name).is_file(), name
    meta = json.loads((demo_dir / "face.json").read_text())
    assert np.asarray(meta["landmarks_model"]).shape == (68, 3)
    assert np.asarray(meta["landmarks_px"]).shape == (68, 2)
    assert np.asarray(meta["camera"]["K"]).shape == (3, 3)


def test_load_scene_from_folder_and_from_obj(demo_dir):
    from viewers.face import load_scene

    s = load_scene(demo_dir)
    assert s.name == "face" and s.has_camera and s.landmarks_model.shape == (68, 3)
    assert s.mesh.texture is not None and s.texture_visible is not None
    # masked-out texels of the visible-only texture are greyed, the visible ones kept
    assert not np.allclose(s.texture_visible, s.mesh.texture, atol=0.02)
    assert np.allclose(s.texture_visible[:, :10], s.mesh.texture[:, :10], atol=0.02)
    s2 = load_scene(demo_dir / "face.obj")
    assert s2.has_camera and np.array_equal(s2.mesh.faces, s.mesh.faces)


def test_help_lists_keys(capsys):
    from viewers.face import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for key in ("T ", "W ", "N ", "L ", "B ", "Left/Right", "Up/Down", "S ", "Q / Esc", "--screenshot", "--yaw"):
        assert key in out, key


def test_missing_open3d_message(monkeypatch, capsys, demo_dir):
    from viewers.face import main

    monkeypatch.setitem(sys.modules, "open3d", None)  # makes `import open3d` raise ImportError
    assert main([str(demo_dir), "--screenshot", "x.png"]) == 2
    assert "pip install -e .[viewer]" in capsys.readouterr().err


def test_bad_inputs_exit_codes(tmp_path, capsys):
    from viewers.face import main

    assert main([str(tmp_path / "missing.obj")]) == 2
    (tmp_path / "x.txt").write_text("hi")
    assert main([str(tmp_path / "x.txt")]) == 2
    if _has_open3d():
        (tmp_path / "bad.obj").write_text("v 1 2\n")
        assert main([str(tmp_path / "bad.obj"), "--screenshot", str(tmp_path / "s.png")]) == 1
        assert "bad.obj" in capsys.readouterr().err


@needs_o3d
def test_image_without_reconstruction_says_so(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from viewers.face import main

    monkeypatch.setitem(sys.modules, "recon3d.reconstruct", None)  # as if this build had none
    Image.new("RGB", (32, 32), (200, 150, 120)).save(tmp_path / "me.jpg")
    assert main([str(tmp_path / "me.jpg"), "--screenshot", str(tmp_path / "s.png")]) == 1
    assert "reconstruction not available in this build" in capsys.readouterr().err


@needs_o3d
def test_image_is_reconstructed_then_shown(tmp_path, monkeypatch, capsys):
    """The image path goes through recon3d.reconstruct(image, callback=...) and save_reconstruction (stubbed)."""
    import types

    from PIL import Image

    from viewers.face import main, write_demo_folder

    calls = []

    class FakeRec:
        pass

    def save_reconstruction(rec, out_dir, formats=("obj",)):
        calls.append(("save", Path(out_dir), tuple(formats)))
        write_demo_folder(out_dir, stem="me", n=24, tex_size=32)

    def reconstruct(image, callback=None):
        calls.append(("reconstruct", Path(image)))
        for stage, frac in (("detect", 0.1), ("fit", 0.6), ("texture", 0.9)):
            callback(stage, frac)
        return FakeRec()

    monkeypatch.setitem(sys.modules, "recon3d.reconstruct", types.SimpleNamespace(reconstruct=reconstruct,
                        save_reconstruction=save_reconstruction))
    Image.new("RGB", (32, 32), (200, 150, 120)).save(tmp_path / "me.jpg")
    out = tmp_path / "rec"
    assert main([str(tmp_path / "me.jpg"), "--out", str(out), "--screenshot", str(tmp_path / "s.png"),
                 "--size", "64x64"]) == 0
    assert calls[0] == ("reconstruct", tmp_path / "me.jpg") and calls[1][1] == out
    assert (out / "me.obj").is_file() and _png(tmp_path / "s.png").std() > 0.05
    assert "reconstructing me.jpg" in capsys.readouterr().err


@needs_o3d
def test_screenshot_is_textured_skin_and_changes_with_yaw(demo_dir, tmp_path):
    from viewers.face import main

    a, b = tmp_path / "front.png", tmp_path / "yaw.png"
    assert main([str(demo_dir), "--screenshot", str(a), "--size", "160x160"]) == 0
    assert main([str(demo_dir), "--screenshot", str(b), "--size", "160x160", "--yaw", "45"]) == 0
    img, img_yaw = _png(a), _png(b)
    assert img.shape == (160, 160, 3)
    assert img.std() > 0.05  # not blank
    frac, _ = _skin_fraction(img)
    assert frac > 0.2, f"face not skin-coloured (texture missing or grey?): {frac:.2f}"
    centre = img[60:100, 60:100].reshape(-1, 3).mean(0)
    r, g, bl = centre
    assert r > g > bl and (r - bl) / r > 0.2, centre  # skin hue, clearly saturated (not grey)
    assert np.abs(img_yaw - img).mean() > 0.01
    # +yaw turns the nose (and the face) to the image right: the red lips move right
    def lips_x(im):
        lips = (im[..., 0] > 0.4) & (im[..., 1] < 0.55 * im[..., 0]) & (im[..., 2] < 0.55 * im[..., 0])
        assert lips.sum() > 5
        return np.nonzero(lips)[1].mean()

    assert lips_x(img_yaw) > lips_x(img) + 5


@needs_o3d
def test_open3d_uv_convention_pin(tmp_path):
    """A quad with a red top-left texel quadrant shows red at the top-left of the screen."""
    from recon3d.structures.mesh import Mesh
    from viewers.face import FaceScene, render_screenshot

    tex = np.full((8, 8, 3), 0.5, dtype=np.float32)
    tex[:4, :4] = [1.0, 0.0, 0.0]
    tex[4:, :4] = [0.0, 1.0, 0.0]
    quad = Mesh(verts=[[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], faces=[[0, 1, 2], [0, 2, 3]],
                uv=[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], texture=tex)
    img = render_screenshot(FaceScene(name="quad", mesh=quad), tmp_path / "q.png", size=(128, 128))
    tl, bl = img[40, 40], img[88, 40]
    assert tl[0] > 0.5 > tl[1] and tl[2] < 0.5, tl
    assert bl[1] > 0.5 > bl[0], bl


@needs_o3d
def test_photo_view_aligns_landmarks_with_camera(demo_dir):
    from viewers.face import FaceViewer, ViewState, load_scene

    scene = load_scene(demo_dir)
    v = FaceViewer(scene, size=(150, 180), visible=False, state=ViewState(view="photo", landmarks=True))
    try:
        img = v.capture()
        expected = v.photo_px_to_window(np.asarray(json.loads((demo_dir / "face.json").read_text())["landmarks_px"]))
        v.set_state(backdrop="behind", texture="visible", normals=True, wireframe=True)
        img2 = v.capture()
    finally:
        v.close()
    red = (img[..., 0] > 0.6) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)
    ys, xs = np.nonzero(red)
    assert len(xs) > 50
    d = np.sqrt((xs[None] - expected[:, :1]) ** 2 + (ys[None] - expected[:, 1:]) ** 2).min(1)
    assert np.median(d) < 1.5, np.median(d)
    assert np.abs(img2 - img).mean() > 0.01  # the toggles change the picture


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (apt-get install xvfb); interactive viewer test skipped")
    for n in range(91, 120):
        if not Path(f"/tmp/.X{n}-lock").exists():
            break
    display = f":{n}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if proc.poll() is not None:
        pytest.skip(f"Xvfb could not start on {display}")
    return proc, display


@needs_o3d
def test_interactive_window_starts_and_quits_under_xvfb(demo_dir, tmp_path):
    xvfb, display = _start_xvfb()
    try:
        env = dict(os.environ, DISPLAY=display)
        r = subprocess.run(
            [sys.executable, "-m", "viewers.face", str(demo_dir), "--size", "200x200", "--quit-after", "1"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Q / Esc" in r.stdout and "viewer closed" in r.stdout


@needs_o3d
@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool not installed; key test skipped")
def test_interactive_keys_under_xvfb(demo_dir, tmp_path):
    xvfb, display = _start_xvfb()
    env = dict(os.environ, DISPLAY=display)
    shots = tmp_path / "shots"
    viewer = subprocess.Popen(
        [sys.executable, "-m", "viewers.face", str(demo_dir), "--size", "200x200", "--shots-dir", str(shots),
         "--quit-after", "100"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        win = ""
        t0 = time.monotonic()
        def find_window() -> str:
            r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "recon3d viewer"], env=env,
                               capture_output=True, text=True)
            ids = r.stdout.split()
            return ids[-1] if ids else ""

        while not win and time.monotonic() - t0 < 90 and viewer.poll() is None:
            win = find_window()
            time.sleep(0.5)
        assert win, "viewer window did not appear"
        time.sleep(1.5)
        # Keys are sent to the window found at that moment (GLFW may re-create it while starting, so
        # an id can go stale under load); the assertions below check that each key took effect.
        for key in ("t", "b", "Right", "s", "q"):
            for _ in range(3):
                r = subprocess.run(["xdotool", "key", "--window", find_window() or win, key], env=env,
                                   capture_output=True, timeout=10)
                if r.returncode == 0 or viewer.poll() is not None:
                    break
                time.sleep(0.5)
            time.sleep(0.7)
        out, err = viewer.communicate(timeout=120)
    finally:
        if viewer.poll() is None:
            viewer.kill()
        xvfb.terminate()
        xvfb.wait(timeout=10)
    assert viewer.returncode == 0, err[-2000:]
    assert "texture=visible" in out and "backdrop=behind" in out and "yaw=+15" in out
    assert len(list(shots.glob("viewer_face_*.png"))) == 1
