"""recon3d.batch: unique stable job names, the runner's report, resume through recon3d.io.export."""

from __future__ import annotations

import pytest

from recon3d.batch import Job, Outcome, collect_jobs, exported, run_batch, unique_names
from recon3d.errors import NoFaceError


def test_colliding_stems_get_unique_stable_names(tmp_path):
    for n in ("face.jpg", "face.png", "face_1.jpg", "b.png"):
        (tmp_path / n).write_bytes(b"x")
    jobs, missing = collect_jobs([str(tmp_path), str(tmp_path / "nope.png")])
    names = [j.name for j in jobs]
    assert len(set(names)) == len(names) == 4
    assert dict(zip([j.source.name for j in jobs], names, strict=True))["face_1.jpg"] == "face_1"
    assert missing == [f"{tmp_path / 'nope.png'} (no such file)"]
    again, _ = collect_jobs([str(tmp_path)])
    assert [j.name for j in again] == names  # stable
    assert unique_names(["a", "a", "a", "a_1", "a_2"]) == ["a", "a_3", "a_4", "a_1", "a_2"]


def test_demo_first_and_duplicates_of_one_file_once(tmp_path):
    (tmp_path / "x.png").write_bytes(b"x")
    jobs, _ = collect_jobs([str(tmp_path / "x.png"), str(tmp_path / "*.png")], prepend=[("array", "x")])
    assert [(j.source if j.source == "array" else j.source.name, j.name) for j in jobs] == [("array", "x"),
                                                                                          ("x.png", "x_1")]


def test_bad_item_does_not_stop_the_others_and_is_reported():
    def process(job):
        if job.name == "bad":
            raise NoFaceError("no face found")
        if job.name == "bug":
            raise KeyError("oops")
        return Outcome(f"{job.name} ok")

    seen = []
    report = run_batch([Job(1, "a"), Job(2, "bad"), Job(3, "bug"), Job(4, "c")], process, missing=["m.png"],
                       progress=lambda item, k, n: seen.append((item.name, k, n)))
    assert [i.status for i in report.items] == ["failed", "ok", "failed", "failed", "ok"]
    assert report.n_ok == 2 and not report.ok
    fail = {i.name: i for i in report.failures}
    assert fail["m.png"].error == "input not found"
    assert fail["bad"].error == "no face found" and fail["bad"].expected
    assert fail["bug"].error.startswith("unexpected KeyError") and not fail["bug"].expected and fail["bug"].traceback
    assert seen == [("a", 1, 4), ("bad", 2, 4), ("bug", 3, 4), ("c", 4, 4)]
    assert report.items[1].message == "a ok"


def test_resume_skips_exported_items_only(tmp_path):
    from recon3d.edit import make_synthetic_reconstruction
    from recon3d.reconstruct import save_reconstruction

    rec = make_synthetic_reconstruction(size=64, texture_size=32)
    save_reconstruction(rec, tmp_path / "synthetic", formats=["obj"])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "half.json").write_text('{"files": {"obj": "half.obj"}}')
    ran = []
    report = run_batch([Job(0, "synthetic"), Job(1, "half"), Job(2, "new")], lambda j: ran.append(j.name),
                       done=exported(tmp_path, ["obj"]))
    assert ran == ["half", "new"]
    assert [i.status for i in report.items] == ["skipped", "ok", "ok"] and report.n_skipped == 1
    # a format that was not exported is not done
    assert not exported(tmp_path, ["glb"])(Job(0, "synthetic"))


@pytest.mark.parametrize("bad", [[], ["x"]])
def test_unique_names_trivial(bad):
    assert unique_names(bad) == bad
