"""recon3d.io.mesh: OBJ/MTL/PNG, PLY and GLB round trips, UV orientation pins, error handling."""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest
import torch

from recon3d.conventions import uv_obj_to_gltf, uv_to_texel
from recon3d.errors import AssetError, Recon3DError, ShapeError
from recon3d.io.mesh import MeshFileError, load_mesh, save_mesh, split_uv_seams
from recon3d.structures.mesh import Mesh


def _icosphere_mesh(seed: int = 0, seams: bool = True) -> Mesh:
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=2)
    rng = np.random.default_rng(seed)
    V = len(ico.vertices)
    perm = rng.permutation(V)  # an order no tool would produce by itself
    faces = np.argsort(perm)[ico.faces]
    if seams:
        uv = rng.random((V + 7, 2))
        uv_faces = rng.integers(0, V + 7, size=faces.shape)
    else:
        uv, uv_faces = rng.random((V, 2)), None
    return Mesh(
        verts=ico.vertices[perm], faces=faces, uv=uv, uv_faces=uv_faces,
        texture=rng.random((8, 12, 3)), vert_colors=rng.random((V, 3)), normals=ico.vertex_normals[perm],
    )


def _corner_texture(Ht: int = 8, Wt: int = 8) -> np.ndarray:
    """Grey texture with a red top-left quadrant and a green bottom-left quadrant."""
    tex = np.full((Ht, Wt, 3), 0.5, dtype=np.float32)
    tex[: Ht // 2, : Wt // 2] = [1.0, 0.0, 0.0]
    tex[Ht // 2:, : Wt // 2] = [0.0, 1.0, 0.0]
    return tex


# ------------------------------------------------------------------------------------------- Mesh


def test_mesh_converts_and_validates():
    m = Mesh(verts=torch.zeros(3, 3, dtype=torch.float64), faces=torch.tensor([[0, 1, 2]], dtype=torch.int32))
    assert m.verts.dtype == np.float32 and m.faces.dtype == np.int64
    with pytest.raises(ShapeError, match="faces index out of range"):
        Mesh(verts=np.zeros((3, 3)), faces=[[0, 1, 3]])
    with pytest.raises(ShapeError, match="verts must be"):
        Mesh(verts=np.zeros((3, 2)), faces=[[0, 1, 2]])
    with pytest.raises(ShapeError, match="one row per vertex"):
        Mesh(verts=np.zeros((3, 3)), faces=[[0, 1, 2]], uv=np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="texture"):
        Mesh(verts=np.zeros((3, 3)), faces=[[0, 1, 2]], texture=np.zeros((4, 4)))


def test_uv_faces_default_to_faces():
    m = Mesh(verts=np.eye(3), faces=[[0, 1, 2]], uv=np.zeros((3, 2)))
    assert np.array_equal(m.uv_faces, m.faces) and not m.has_seams


# -------------------------------------------------------------------------------------------- OBJ


def test_obj_round_trip_keeps_order_faces_uvs_exactly(tmp_path):
    m = _icosphere_mesh()
    written = save_mesh(tmp_path / "head.obj", m)
    assert [p.name for p in written] == ["head.obj", "head_texture.png", "head.mtl"]
    back = load_mesh(tmp_path / "head.obj")
    assert np.array_equal(back.verts, m.verts)  # bit-exact float32
    assert np.array_equal(back.faces, m.faces)
    assert np.array_equal(back.uv, m.uv) and np.array_equal(back.uv_faces, m.uv_faces)
    assert np.array_equal(back.normals, m.normals)
    assert np.array_equal(back.vert_colors, m.vert_colors)
    assert np.abs(back.texture - m.texture).max() <= 0.5 / 255 + 1e-6
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_obj_mtl_content(tmp_path):
    m = _icosphere_mesh()
    save_mesh(tmp_path / "a.obj", m, texture_name="skin.png")
    mtl = (tmp_path / "a.mtl").read_text()
    assert "map_Kd skin.png" in mtl and "Kd 1.000 1.000 1.000" in mtl and "d 1.0" in mtl
    obj = (tmp_path / "a.obj").read_text().splitlines()
    assert "mtllib a.mtl" in obj and "usemtl material_0" in obj
    assert (tmp_path / "skin.png").is_file()
    assert any(line.startswith("f ") and line.count("/") == 6 for line in obj)


def test_obj_texture_orientation_top_left_texel_is_uv_0_1(tmp_path):
    """A texture whose top-left texel is red maps to the uv (0, 1) region (OBJ convention)."""
    quad = Mesh(
        verts=[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], faces=[[0, 1, 2], [0, 2, 3]],
        uv=[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], texture=_corner_texture(),
    )
    save_mesh(tmp_path / "q.obj", quad)
    back = load_mesh(tmp_path / "q.obj")
    from PIL import Image

    png = np.asarray(Image.open(tmp_path / "q_texture.png"))
    assert tuple(png[0, 0]) == (255, 0, 0)  # row 0 of the PNG is the top
    Ht, Wt = back.texture.shape[:2]
    for uv, rgb in (((0.05, 0.95), (1.0, 0.0, 0.0)), ((0.05, 0.05), (0.0, 1.0, 0.0))):
        col, row = uv_to_texel(torch.tensor([uv]), (Ht, Wt))[0].round().long().tolist()
        assert np.allclose(back.texture[row, col], rgb), (uv, back.texture[row, col])
    # the vertex at the top-left of the quad (x=0, y=1) carries uv (0, 1)
    top_left = int(np.flatnonzero((back.verts == [0, 1, 0]).all(1))[0])
    corner = np.flatnonzero(back.faces.reshape(-1) == top_left)[0]
    assert np.allclose(back.uv[back.uv_faces.reshape(-1)[corner]], [0.0, 1.0])


def test_obj_missing_texture_and_mtl_warn(tmp_path):
    save_mesh(tmp_path / "a.obj", _icosphere_mesh())
    (tmp_path / "a_texture.png").unlink()
    with pytest.warns(UserWarning, match="texture 'a_texture.png' not found"):
        m = load_mesh(tmp_path / "a.obj")
    assert m.texture is None and m.uv is not None
    (tmp_path / "a.mtl").unlink()
    with pytest.warns(UserWarning, match="material file 'a.mtl' not found"):
        assert load_mesh(tmp_path / "a.obj").texture is None


def test_obj_polygons_negative_indices_and_comments(tmp_path):
    p = tmp_path / "quad.obj"
    p.write_text("# quad\nv 0 0 0\nv 1 0 0\nv 1 1 0 # c\nv 0 1 0\nf -4 -3 -2 -1\n")
    m = load_mesh(p)
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3]] and m.uv is None


@pytest.mark.parametrize("content", ["v 0 0\nf 1 2 3\n", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "hello\n", "\x89PNG\x00\xff"])
def test_obj_corrupt_raises_naming_file(tmp_path, content):
    p = tmp_path / "bad.obj"
    p.write_bytes(content.encode("latin-1"))
    with pytest.raises(MeshFileError, match="bad.obj") as e:
        load_mesh(p)
    assert isinstance(e.value, Recon3DError)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(AssetError, match="nope.obj"):
        load_mesh(tmp_path / "nope.obj")
    with pytest.raises(MeshFileError, match="unknown mesh format"):
        save_mesh(tmp_path / "a.stl", _icosphere_mesh())


# -------------------------------------------------------------------------------------------- PLY


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip_colours_and_order(tmp_path, binary):
    m = _icosphere_mesh()
    save_mesh(tmp_path / "a.ply", m, binary=binary)
    head = (tmp_path / "a.ply").read_bytes()[:300]
    assert (b"binary_little_endian" in head) == binary
    back = load_mesh(tmp_path / "a.ply")
    assert np.array_equal(back.verts, m.verts) and np.array_equal(back.faces, m.faces)
    expected = np.round(np.clip(m.vert_colors, 0, 1) * 255) / 255
    assert np.abs(back.vert_colors - expected).max() < 1e-6
    assert np.allclose(back.normals, m.normals, atol=1e-6)


def test_ply_truncated_raises(tmp_path):
    save_mesh(tmp_path / "a.ply", _icosphere_mesh())
    data = (tmp_path / "a.ply").read_bytes()
    (tmp_path / "bad.ply").write_bytes(data[: len(data) // 2])
    with pytest.raises(MeshFileError, match="bad.ply"):
        load_mesh(tmp_path / "bad.ply")


# -------------------------------------------------------------------------------------------- GLB


def _glb_json(path) -> dict:
    data = path.read_bytes()
    (n,) = struct.unpack("<I", data[12:16])
    return json.loads(data[20: 20 + n])


def test_glb_round_trip_without_seams_keeps_order_and_texture(tmp_path):
    m = _icosphere_mesh(seams=False)
    save_mesh(tmp_path / "a.glb", m)
    back = load_mesh(tmp_path / "a.glb")
    assert back.n_verts == m.n_verts
    assert np.array_equal(back.verts, m.verts) and np.array_equal(back.faces, m.faces)
    assert np.abs(back.uv - m.uv).max() < 1e-6
    assert back.texture is not None and np.abs(back.texture - m.texture).max() <= 0.5 / 255 + 1e-6
    assert "images" in _glb_json(tmp_path / "a.glb")


def test_glb_stores_gltf_uv_convention(tmp_path):
    """Raw TEXCOORD_0 in the GLB is top-left based: uv_obj_to_gltf of ours."""
    quad = Mesh(verts=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 2]], uv=[[0.0, 0.0], [1.0, 0.0], [0.0, 0.75]],
                texture=_corner_texture())
    save_mesh(tmp_path / "q.glb", quad)
    data = (tmp_path / "q.glb").read_bytes()
    g = _glb_json(tmp_path / "q.glb")
    (n,) = struct.unpack("<I", data[12:16])
    bin_start = 20 + n + 8
    acc = g["accessors"][g["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"]]
    view = g["bufferViews"][acc["bufferView"]]
    off = bin_start + view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    raw = np.frombuffer(data[off: off + 4 * 2 * acc["count"]], dtype="<f4").reshape(-1, 2)
    assert np.allclose(raw, uv_obj_to_gltf(quad.uv))


def test_glb_with_seams_splits_vertices(tmp_path):
    m = _icosphere_mesh(seams=True)
    split, src = split_uv_seams(m)
    assert split.n_verts > m.n_verts and np.array_equal(split.verts, m.verts[src])
    assert np.array_equal(split.uv[split.faces], m.uv[m.uv_faces])  # every corner keeps its uv
    save_mesh(tmp_path / "a.glb", m)
    back = load_mesh(tmp_path / "a.glb")
    assert np.array_equal(back.verts, split.verts) and np.array_equal(back.faces, split.faces)
    assert np.array_equal(back.verts[: m.n_verts], m.verts)  # original vertices first, in order


def test_glb_vertex_colours(tmp_path):
    m = _icosphere_mesh().replace(uv=None, uv_faces=None, texture=None)
    save_mesh(tmp_path / "c.glb", m)
    back = load_mesh(tmp_path / "c.glb")
    assert np.array_equal(back.verts, m.verts)
    assert np.abs(back.vert_colors - m.vert_colors).max() <= 0.5 / 255 + 1e-6


def test_glb_truncated_raises(tmp_path):
    save_mesh(tmp_path / "a.glb", _icosphere_mesh(seams=False))
    data = (tmp_path / "a.glb").read_bytes()
    (tmp_path / "bad.glb").write_bytes(data[:100])
    with pytest.raises(MeshFileError, match="bad.glb"):
        load_mesh(tmp_path / "bad.glb")


def test_save_does_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ext in ("obj", "ply", "glb"):
            save_mesh(tmp_path / f"a.{ext}", _icosphere_mesh(seams=False))


def test_glb_uv_without_texture_loads_without_texture(tmp_path):
    m = Mesh(verts=np.eye(3), faces=[[0, 1, 2]], uv=[[0.1, 0.2], [0.9, 0.2], [0.5, 0.8]])
    save_mesh(tmp_path / "u.glb", m)
    back = load_mesh(tmp_path / "u.glb")
    assert back.texture is None and np.allclose(back.uv, m.uv, atol=1e-6)


@pytest.mark.parametrize("parts", [(), ("uv",), ("normals",), ("uv", "normals"), ("vert_colors",)])
def test_obj_fast_and_line_parsers_agree(tmp_path, monkeypatch, parts):
    import recon3d.io._obj as mio

    full = _icosphere_mesh()
    keep = {k: getattr(full, k) for k in parts}
    if "uv" in parts:
        keep["uv_faces"] = full.uv_faces
    m = Mesh(verts=full.verts, faces=full.faces, **keep)
    save_mesh(tmp_path / "a.obj", m)
    assert mio._parse_obj_fast((tmp_path / "a.obj").read_text(), tmp_path / "a.obj") is not None
    fast = load_mesh(tmp_path / "a.obj")
    monkeypatch.setattr(mio, "_parse_obj_fast", lambda text, path: None)
    slow = load_mesh(tmp_path / "a.obj")
    for name in ("verts", "faces", "uv", "uv_faces", "normals", "vert_colors"):
        a, b, want = getattr(fast, name), getattr(slow, name), getattr(m, name)
        assert (a is None) == (b is None) == (want is None), name
        if a is not None:
            assert np.array_equal(a, b) and np.array_equal(a, want), name
