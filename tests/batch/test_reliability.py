"""Issue 18, one test per class of defect: nothing lost (names, atomic folders, resume), nothing
nonsensical reported as success (landmarks, models, meshes), every failure a clear error before
the work (output location, device, image size), permissions, texture names, reproducibility.

Real reconstructions use the toy model, 64x64 images and a fake detector (``toy_cli``)."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_cli import FAST, fake_detect, harness, toy_landmarks, write_image

import recon3d.reconstruct
from pipelines import reconstruct as cli
from recon3d.batch import collect_jobs, unique_names
from recon3d.morphable.model import save_model
from recon3d.morphable.toy import make_toy_model


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(model file, landmarks file, landmarks array) of the toy model."""
    d = tmp_path_factory.mktemp("toy")
    m = make_toy_model()
    save_model(m, d / "toy.npz")
    lm = toy_landmarks(m)
    np.savetxt(d / "lm.txt", lm)
    return d / "toy.npz", d / "lm.txt", lm


@pytest.fixture()
def detect(monkeypatch, toy):
    calls = []
    fake = fake_detect(toy[2])

    def wrapped(img, **kw):
        calls.append(tuple(img.shape))
        return fake(img, **kw)

    monkeypatch.setattr(recon3d.reconstruct, "detect_faces", wrapped)
    return calls


def _run(toy, *argv) -> int:
    return cli.main([*map(str, argv), "--model", str(toy[0]), *FAST])


def _complete(folder: Path) -> bool:
    from recon3d.io.export import read_export

    return folder.is_dir() and read_export(folder, name=folder.name).is_complete(["obj"])


#: What a batch writes into --out next to the outputs: the done-markers and the results index.
BOOKKEEPING = (".done", "index.jsonl")


def _temps(root: Path) -> list[str]:
    """Temporary files and folders in ``root`` (and in its done-marker folder)."""
    marks = [p.name for p in (root / ".done").iterdir() if p.name.startswith(".")] if (root / ".done").is_dir() else []
    return [p.name for p in root.iterdir() if p.name.startswith(".") and p.name not in BOOKKEEPING] + marks


def _outputs(root: Path) -> list[str]:
    """The names in ``root`` except the batch's bookkeeping, sorted."""
    return sorted(p.name for p in root.iterdir() if p.name not in BOOKKEEPING)


# -- 1. names never collide -------------------------------------------------------------------------
def test_names_never_collide_issue_example_case_and_all_faces(tmp_path):
    for n in ("face.jpg", "face.png", "face_1.jpg", "Face.bmp", "group.png", "group_face0.png", "group_face1.jpg"):
        (tmp_path / n).write_bytes(b"x")
    for all_faces in (False, True):
        jobs, _ = collect_jobs([str(tmp_path)], all_faces=all_faces)
        names = [j.name for j in jobs]
        keys = [n.casefold() for n in names]
        assert len(set(keys)) == len(keys) == 7, names  # also on case-insensitive file systems
        if all_faces:  # no job's name is another job's face folder
            for n in names:
                assert not any(re.fullmatch(re.escape(n.casefold()) + r"_face\d+", k) for k in keys), names
    assert unique_names(["face", "face", "face_1"]) == ["face", "face_2", "face_1"]
    assert unique_names(["group", "group_face0"], all_faces=True) == ["group", "group_face0_1"]


def test_resume_never_skips_an_input_whose_folder_holds_another_input(tmp_path, toy, detect):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    write_image(a / "face.png", seed=1), write_image(b / "face.png", seed=2)
    out = tmp_path / "out"
    assert _run(toy, a / "face.png", "--out", out) == 0
    # a second input with the same stem, listed first, now gets the name "face"
    assert _run(toy, b / "face.png", a / "face.png", "--out", out, "--resume") == 0
    srcs = {json.loads((out / n / f"{n}.json").read_text())["batch"]["source"] for n in ("face", "face_1")}
    assert srcs == {str((a / "face.png").resolve()), str((b / "face.png").resolve())}


# -- 2. atomic folders ------------------------------------------------------------------------------
def test_concurrent_writers_and_a_reader_never_see_a_missing_or_partial_folder(tmp_path):
    from recon3d.edit import make_synthetic_reconstruction
    from recon3d.reconstruct import save_reconstruction

    rec = make_synthetic_reconstruction(size=32, texture_size=16)
    target = tmp_path / "synthetic"
    save_reconstruction(rec, target, extras=False)
    errors, missing, stop = [], [], threading.Event()

    def writer():
        try:
            for _ in range(15):
                save_reconstruction(rec, target, extras=False)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    def reader():
        while not stop.is_set():
            if not (target / "synthetic.obj").is_file() or not (target / "synthetic.json").is_file():
                missing.append(time.perf_counter())

    threads = [threading.Thread(target=writer) for _ in range(3)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert not errors, errors[:3]
    assert not missing, f"the OBJ or JSON was missing {len(missing)} times"
    assert _complete(target) and not _temps(tmp_path)


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_with_and_without_an_atomic_exchange(tmp_path, monkeypatch, exchange):
    import recon3d.io.atomic as atomic

    if not exchange:  # an OS without renameat2 / renamex_np: rename aside, then in
        monkeypatch.setattr(atomic, "_swap_function", lambda: None)
    target = tmp_path / "t"
    for k in range(3):
        with atomic.atomic_dir(target) as d:
            (d / "f.txt").write_text(str(k))
        assert (target / "f.txt").read_text() == str(k)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(atomic.OutputError, match="not a folder"):
        with atomic.atomic_dir(tmp_path / "file") as d:
            pass
    with pytest.raises(atomic.OutputError, match="not a folder"):
        new = tmp_path / "new"
        new.mkdir()
        atomic.replace_dir(new, tmp_path / "file")


def test_resume_cleans_temp_folders_of_killed_runs_only(tmp_path, toy, detect):
    from recon3d.io.atomic import clean_stale_temps, is_temp_name, temp_name

    write_image(tmp_path / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = out / f".x.tmp-{dead}-0123abcd"
    stale.mkdir()
    (stale / "x.obj").write_text("partial")
    live = out / temp_name("y")  # a writer that is still running (this process)
    live.mkdir()
    assert is_temp_name(stale.name) and is_temp_name(live.name)
    assert _run(toy, tmp_path / "x.png", "--out", out, "--resume") == 0
    assert not stale.exists() and live.exists() and _complete(out / "x")
    assert clean_stale_temps(out) == []


def test_kill9_mid_batch_then_resume_completes_everything(tmp_path, toy, detect):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for k in range(6):
        write_image(inp / f"img{k}.png", seed=k)
    args = [str(inp), "--out", str(out), "--model", str(toy[0]), *FAST]
    proc = subprocess.Popen([*harness(tmp_path, toy[1]), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:  # kill while a folder is being written
        names = [p.name for p in out.iterdir() if p.name not in BOOKKEEPING] if out.is_dir() else []
        done = sum(not n.startswith(".") for n in names)
        if (done >= 1 and any(n.startswith(".") for n in names)) or done >= 4:
            break
        time.sleep(0.002)
    proc.kill()  # SIGKILL, mid-way
    proc.wait()
    assert cli.main([*args, "--resume"]) == 0
    names = _outputs(out)
    assert names == [f"img{k}" for k in range(6)], names  # none missing, none duplicated, no temp left
    assert all(_complete(out / n) for n in names)
    assert len(detect) < 6  # the finished ones were skipped


def test_two_concurrent_batches_into_one_out_lose_nothing(tmp_path, toy, detect):
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    for k in range(4):
        write_image(inp / f"img{k}.png", seed=k)
    rcs: list[int] = []
    runs = [threading.Thread(target=lambda: rcs.append(_run(toy, inp, "--out", out))) for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join()
    assert rcs == [0, 0]
    assert _outputs(out) == [f"img{k}" for k in range(4)] and not _temps(out)
    assert all(_complete(out / f"img{k}") for k in range(4))


def test_rotate_and_deocclude_outputs_appear_complete_or_not_at_all(tmp_path, monkeypatch):
    import recon3d.io
    from pipelines import deocclude as deo_cli
    from pipelines import rotate as rot_cli
    from recon3d.edit import make_synthetic_reconstruction

    synth = make_synthetic_reconstruction(size=64, texture_size=32)
    monkeypatch.setattr(recon3d.reconstruct, "reconstruct", lambda src, **kw: synth)
    write_image(tmp_path / "a.png")
    real = recon3d.io.save_image
    n = {"k": 0}

    def failing(path, img, **kw):
        n["k"] += 1
        if n["k"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, img, **kw)

    monkeypatch.setattr(recon3d.io, "save_image", failing)
    for verb, extra in ((rot_cli, ["--yaw", "0", "10", "--no-mesh"]), (deo_cli, ["--cue", "photometric"])):
        n["k"] = 0
        out = tmp_path / f"out_{verb.__name__.rsplit('.', 1)[-1]}"
        assert verb.main([str(tmp_path / "a.png"), "--out", str(out), "-q", *extra]) == 1
        assert _outputs(out) == [] and not _temps(out)  # no half-written folder, no temp folder


# -- 3. garbage is refused ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["outside", "negative", "shuffled", "identical", "huge", "nan", "collinear"])
def test_user_landmarks_that_are_garbage_are_refused(tmp_path, toy, case, capsys):
    lm = toy[2].copy()
    bad = {"outside": lm + 500, "negative": -lm, "shuffled": lm[np.random.default_rng(0).permutation(68)],
           "identical": np.full((68, 2), 30.0), "huge": lm * 1e30, "nan": np.where(np.arange(68)[:, None] == 3, np.nan, lm),
           "collinear": np.c_[np.linspace(10, 50, 68), np.linspace(10, 50, 68)]}[case]
    f = tmp_path / "lm.npy"
    np.save(f, bad)
    write_image(tmp_path / "x.png")
    assert _run(toy, tmp_path / "x.png", "--landmarks", f, "--out", tmp_path / "o") == 1
    err = capsys.readouterr().err
    assert "landmark" in err and "unexpected" not in err and "Traceback" not in err, err
    assert not (tmp_path / "o" / "x").exists()


def test_complex_landmarks_are_refused():
    from recon3d.errors import Recon3DError
    from recon3d.io.landmarks_file import check_landmarks

    with pytest.raises(Recon3DError, match="real"):
        check_landmarks(np.zeros((68, 2), complex), (64, 64))


def test_pickles_in_a_model_file_are_never_executed(tmp_path):
    import pickle

    from recon3d.errors import AssetError
    from recon3d.morphable.model import load_model

    flag = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(flag), "w"))

    save_model(make_toy_model(), tmp_path / "m.npz")
    arrays = dict(np.load(tmp_path / "m.npz"))
    arrays["mean"] = np.array([Evil()], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    assert pickle.dumps(Evil())
    with pytest.raises(AssetError, match="'mean'"):
        load_model(tmp_path / "evil.npz")
    assert not flag.exists()


# -- 5./6. errors before the work ---------------------------------------------------------------------
def test_full_disk_is_one_line_before_any_work_and_during_it(tmp_path, toy, detect, monkeypatch, capsys):
    import recon3d.io.atomic as atomic
    import recon3d.io.export as export

    write_image(tmp_path / "x.png")
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "write", full)
    assert _run(toy, tmp_path / "x.png", "--out", tmp_path / "o") == 2
    assert "No space left on device" in capsys.readouterr().err and not detect
    monkeypatch.setattr(atomic.os, "write", real_write)

    def no_space(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "save_image", no_space)
    assert _run(toy, tmp_path / "x.png", "--out", tmp_path / "o", "--no-extras", "--export", "glb") == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "unexpected" not in err, err
    assert not _temps(tmp_path / "o")


def test_a_file_where_the_face_folder_goes_fails_before_reconstructing(tmp_path, toy, detect, capsys):
    write_image(tmp_path / "x.png")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("mine")
    assert _run(toy, tmp_path / "x.png", "--out", tmp_path / "o") == 1
    assert "not a folder" in capsys.readouterr().err and not detect
    assert (tmp_path / "o" / "x").read_text() == "mine"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write read-only folders")
def test_read_only_out_is_a_usage_error_before_any_work(tmp_path, toy, detect, capsys):
    write_image(tmp_path / "x.png")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert _run(toy, tmp_path / "x.png", "--out", ro / "sub") == 2
    assert "cannot create output folder" in capsys.readouterr().err and not detect


# -- 7. permissions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_follow_the_umask(tmp_path, toy, detect, umask):
    write_image(tmp_path / "x.png")
    old = os.umask(umask)
    try:
        assert _run(toy, tmp_path / "x.png", "--out", tmp_path / "o", "--export", "obj", "glb") == 0
    finally:
        os.umask(old)
    folder = tmp_path / "o" / "x"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


# -- 8. texture names with spaces and non-ASCII ----------------------------------------------------
def test_texture_of_a_photo_named_with_spaces_and_accents_round_trips(tmp_path, toy, detect):
    from recon3d.io.mesh import load_mesh
    from viewers.face import load_scene

    write_image(tmp_path / "my phötö 1.png")
    assert _run(toy, tmp_path / "my phötö 1.png", "--out", tmp_path / "o") == 0
    folder = tmp_path / "o" / "my phötö 1"
    mesh = load_mesh(folder / "my phötö 1.obj")
    assert mesh.texture is not None and mesh.texture.shape == (32, 32, 3)
    assert load_scene(folder).mesh.texture is not None


# -- 9. --all-faces --resume -----------------------------------------------------------------------
def test_all_faces_resume_skips_finished_faces(tmp_path, toy, detect, capsys):
    write_image(tmp_path / "group.png", size=(80, 64))
    out = tmp_path / "o"
    assert _run(toy, tmp_path / "group.png", "--out", out, "--all-faces") == 0
    assert _outputs(out) == ["group_face0", "group_face1"]
    n = len(detect)
    capsys.readouterr()
    assert cli.main([str(tmp_path / "group.png"), "--out", str(out), "--all-faces", "--resume", "--model",
                     str(toy[0]), *FAST[:-1]]) == 0
    assert "1 skipped" in capsys.readouterr().out and len(detect) == n
    # one face folder missing: not done, redone
    import shutil

    shutil.rmtree(out / "group_face1")
    assert _run(toy, tmp_path / "group.png", "--out", out, "--all-faces", "--resume") == 0
    assert len(detect) == n + 1 and _complete(out / "group_face1")


# -- 10. reproducibility ---------------------------------------------------------------------------
def test_deterministic_runs_are_byte_identical(tmp_path, toy, detect):
    write_image(tmp_path / "x.png")
    threads = torch.get_num_threads()
    try:
        for k in range(2):
            assert _run(toy, tmp_path / "x.png", "--out", tmp_path / f"o{k}", "--deterministic", "--seed", "3") == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    for f in ("x.obj", "x_texture.png", "x_texture_mask.png"):
        assert (tmp_path / "o0" / "x" / f).read_bytes() == (tmp_path / "o1" / "x" / f).read_bytes(), f


# -- 11. smaller ------------------------------------------------------------------------------------
def test_max_pixels_is_a_cli_option_and_multi_frame_files_say_so(tmp_path, toy, detect, capsys, caplog):
    from PIL import Image

    write_image(tmp_path / "x.png")
    assert _run(toy, tmp_path / "x.png", "--out", tmp_path / "o", "--max-pixels", "1000") == 1
    assert "--max-pixels" in capsys.readouterr().err
    frames = [Image.fromarray(np.full((64, 64, 3), v, np.uint8)) for v in (0, 128)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level("WARNING"):
        assert _run(toy, tmp_path / "anim.gif", "--out", tmp_path / "o") == 0
    assert "2 frames" in caplog.text
