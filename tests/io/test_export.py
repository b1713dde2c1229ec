"""recon3d.io.export: the output folder written then read in one place (round trip, completeness, viewer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon3d.edit import make_synthetic_reconstruction
from recon3d.io.export import export_file_names, is_exported, read_export, write_reconstruction
from recon3d.reconstruct import render_overlay, save_reconstruction


@pytest.fixture(scope="module")
def synth():
    return make_synthetic_reconstruction(size=96, texture_size=64)


def test_write_then_read_round_trip(synth, tmp_path):
    files = save_reconstruction(synth, tmp_path / "s", formats=["obj", "ply"])
    names = {p.name for p in files}
    expected = set(export_file_names("synthetic", ["obj", "ply"]).values()) | {"synthetic.json", "synthetic.mtl"}
    assert names == expected
    exp = read_export(tmp_path / "s")
    assert exp.name == "synthetic" and exp.mesh_path == tmp_path / "s" / "synthetic.obj"
    assert exp.meta["files"] == export_file_names("synthetic", ["obj", "ply"])
    assert set(exp.files) == set(exp.meta["files"])
    assert exp.meta["pose_deg"] == pytest.approx(synth.pose_deg)
    assert exp.is_complete(["obj", "ply"]) and not exp.is_complete(["glb"])
    assert is_exported(tmp_path / "s", "synthetic", ["obj"])
    # a mesh file as the entry point reads the same folder
    assert read_export(tmp_path / "s" / "synthetic.obj").files == exp.files


def test_rec_save_is_write_reconstruction(synth, tmp_path):
    with pytest.warns(DeprecationWarning, match="save_reconstruction"):  # the 0.1 method still works
        a = synth.save(tmp_path / "a", formats=["obj"], extras=False)
    b = write_reconstruction(synth, tmp_path / "b", formats=["obj"], extras=False)
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        if pa.suffix != ".json":
            assert pa.read_bytes() == pb.read_bytes(), pa.name
    with pytest.raises(ValueError, match="overlay"):
        write_reconstruction(synth, tmp_path / "c", formats=["obj"], extras=True)
    with pytest.raises(ValueError, match="unknown formats"):
        write_reconstruction(synth, tmp_path / "c", formats=["fbx"], extras=False)
    assert render_overlay(synth).shape == synth.image.shape


def test_missing_file_is_not_done(synth, tmp_path):
    save_reconstruction(synth, tmp_path / "s", formats=["obj"])
    assert is_exported(tmp_path / "s", "synthetic", ["obj"])
    (tmp_path / "s" / "synthetic_overlay.png").unlink()
    assert not is_exported(tmp_path / "s", "synthetic", ["obj"])
    assert not is_exported(tmp_path / "nothing", "synthetic", ["obj"])
    (tmp_path / "s" / "synthetic.json").write_text("{not json")
    assert not is_exported(tmp_path / "s", "synthetic", ["obj"])


def test_no_temporary_folder_left_on_failure(synth, tmp_path, monkeypatch):
    import recon3d.io.export as ex

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ex, "save_image", boom)
    with pytest.raises(OSError):
        write_reconstruction(synth, tmp_path / "s", formats=["ply"], extras=False)
    assert list(tmp_path.iterdir()) == []


def test_viewer_reads_through_read_export(synth, tmp_path):
    from viewers.face import load_scene

    save_reconstruction(synth, tmp_path / "s", formats=["obj"])
    scene = load_scene(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "synthetic.json").read_text())
    assert scene.name == "synthetic" and scene.has_camera
    assert np.allclose(scene.K, np.asarray(meta["camera"]["K"]))
    assert scene.texture_visible is not None and scene.photo.shape == tuple(synth.image.shape)


@pytest.mark.parametrize("old", ["recon3d.mesh", "recon3d.mesh.io", "recon3d.mesh.geometry", "recon3d.texture.poisson"])
def test_old_homes_are_deprecated_aliases(old):
    import importlib

    mod = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        importlib.reload(mod)
