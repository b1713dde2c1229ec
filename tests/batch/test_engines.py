"""Issue 17: the batch engines. serial, local worker processes and a local Ray cluster on 127.0.0.1
give identical outputs; a worker killed mid-batch loses and duplicates nothing, and ``--resume``
then finds everything done; a manifest with a bad path and a corrupt image gives failed rows in the
index and exit code 1, the rest done; manifests are streamed.

Real reconstructions of the toy model on 64x64 images; the landmarks come from the manifest's
``landmarks`` column (no detector, so the same code runs in every worker process)."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from toy_cli import FAST, toy_landmarks, write_image

from pipelines import reconstruct as cli
from recon3d.batch import Job, run_batch
from recon3d.batch.engines import EngineConfig
from recon3d.batch.jobs import ManifestError, count_manifest, iter_manifest, manifest_name
from recon3d.batch.records import DoneMarkers, read_index
from recon3d.morphable.model import save_model
from recon3d.morphable.toy import make_toy_model

N = 8


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(model file, manifest.csv of N images with their landmarks, image folder)."""
    d = tmp_path_factory.mktemp("engines")
    m = make_toy_model()
    save_model(m, d / "toy.npz")
    np.savetxt(d / "lm.txt", toy_landmarks(m))
    (d / "img").mkdir()
    with open(d / "photos.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "landmarks"])
        for k in range(N):
            write_image(d / "img" / f"p{k}.png", seed=k)
            w.writerow([f"img/p{k}.png", "lm.txt"])
    return d / "toy.npz", d / "photos.csv", d


def _run(data, out: Path, *extra) -> int:
    return cli.main(["--manifest", str(data[1]), "--out", str(out), "--model", str(data[0]), *FAST, *map(str, extra)])


def _folders(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name not in (".done", "index.jsonl"))


def _files(out: Path) -> dict[str, bytes]:
    """Every output file's bytes (the JSON without its wall-clock timings), by path in ``out``."""
    files = {}
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if p.is_dir() or rel == "index.jsonl" or rel.startswith(".done"):
            continue
        if p.suffix == ".json":
            meta = json.loads(p.read_text())
            meta.pop("timings_s", None)
            files[rel] = json.dumps(meta, sort_keys=True).encode()
        else:
            files[rel] = p.read_bytes()
    return files


_NUMBER = re.compile(rb"-?\d+\.?\d*(?:[eE][-+]?\d+)?")

#: The stated tolerance of engine equality. Not every item is byte-identical, even with one torch
#: thread everywhere: some float sums in the fit depend on where torch's allocator puts the tensors
#: (reproduced in one process by allocating between two reconstructions of one image), so an item
#: run after other items in a process may differ in the last bits from the same item run elsewhere.
ATOL_TEXT = 1e-4  # any number in OBJ/MTL/JSON/landmark files (metres, degrees, pixels, coefficients)
MAX_LEVELS, MAX_PIXEL_FRACTION = 2, 0.01  # PNGs: at most 2 of 255 levels, in at most 1% of the values


def assert_same_outputs(a: Path, b: Path) -> float:
    """The outputs in ``a`` and ``b`` are the same files, equal within the stated tolerance;
    returns the fraction of files that are byte-identical."""
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    identical = 0
    for rel, da in fa.items():
        db = fb[rel]
        if da == db:
            identical += 1
            continue
        if rel.endswith(".png"):
            from PIL import Image

            x = np.asarray(Image.open(a / rel)).astype(int)
            y = np.asarray(Image.open(b / rel)).astype(int)
            diff = np.abs(x - y)
            assert x.shape == y.shape and diff.max() <= MAX_LEVELS and (diff > 0).mean() <= MAX_PIXEL_FRACTION, rel
        else:
            assert _NUMBER.sub(b"#", da) == _NUMBER.sub(b"#", db), rel  # the same text but for numbers
            na = np.array([float(t) for t in _NUMBER.findall(da)])
            nb = np.array([float(t) for t in _NUMBER.findall(db)])
            assert np.allclose(na, nb, rtol=0, atol=ATOL_TEXT), (rel, np.abs(na - nb).max())
    return identical / len(fa)


def _complete(out: Path, names) -> bool:
    from recon3d.io.export import read_export

    return all(read_export(out / n, name=n).is_complete(["obj"]) for n in names)


@pytest.fixture(scope="module")
def serial_out(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "out"
    assert _run(data, out, "--threads", "1") == 0
    assert len(_folders(out)) == N
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster started by the test, asked for 127.0.0.1 (2 CPUs, no dashboard). Ray itself
    replaces a loopback address by this machine's reachable one (``services.resolve_ip_for_localhost``),
    so the test checks that the cluster is one node, on this host."""
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'recon3d[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")  # a loaded 2-core machine starts the raylet slowly
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield ray
    ray.shutdown()


# -- identical outputs whatever the engine ------------------------------------------------------------
def test_local_workers_match_serial(data, serial_out, tmp_path):
    out = tmp_path / "out"
    assert _run(data, out, "--engine", "local", "--workers", "2") == 0
    assert_same_outputs(out, serial_out)
    rows = read_index(out / "index.jsonl")
    assert sorted(r["name"] for r in rows) == _folders(out) and {r["status"] for r in rows} == {"ok"}
    assert all(r["worker"].rsplit(":", 1)[1].isdigit() and r["worker"] != f"{socket.gethostname()}:{os.getpid()}"
               for r in rows)  # run by the workers, not by this process
    assert all(r["pose_deg"] and r["timings"] and r["outputs"] for r in rows)


def test_ray_cluster_on_localhost_processes_8_images_like_serial(data, serial_out, tmp_path, ray_cluster):
    nodes = ray_cluster.nodes()
    assert len(nodes) == 1 and nodes[0]["NodeManagerHostname"] == socket.gethostname()
    out = tmp_path / "out"
    assert _run(data, out, "--engine", "ray", "--workers", "2") == 0
    assert len(_folders(out)) == N
    assert_same_outputs(out, serial_out)
    rows = read_index(out / "index.jsonl")
    assert len(rows) == N and all(r["status"] == "ok" and r["attempts"] == 1 for r in rows)


# -- a killed worker ----------------------------------------------------------------------------------
def _kill_one_worker_mid_batch(out: Path, engine: str):
    """Start a thread that SIGKILLs a worker once the first item is in the index: (rc list the
    caller fills, killed pids, the thread)."""
    rc: list[int] = []
    killed: list[int] = []

    def kill_when_started():
        t0 = time.time()
        while time.time() - t0 < 60 and not rc:
            rows = read_index(out / "index.jsonl") if (out / "index.jsonl").exists() else []
            if rows:
                pid = int(rows[0]["worker"].rsplit(":", 1)[1])
                if engine == "local" and pid not in {p.pid for p in multiprocessing.active_children()}:
                    return  # not a worker process of this test process: kill nothing (the test fails)
                os.kill(pid, signal.SIGKILL)  # it holds its next item now (items are ~0.5 s each)
                killed.append(pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    return rc, killed, killer


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_worker_killed_mid_batch_then_resume_loses_and_duplicates_nothing(data, serial_out, tmp_path, engine,
                                                                         request):
    if engine == "ray":
        request.getfixturevalue("ray_cluster")
    out = tmp_path / "out"
    rc, killed, killer = _kill_one_worker_mid_batch(out, engine)
    rc.append(_run(data, out, "--engine", engine, "--workers", "2"))
    killer.join()
    assert killed and rc == [0]
    assert _folders(out) == _folders(serial_out) and _complete(out, _folders(out))  # none lost, none extra
    rows = read_index(out / "index.jsonl")
    assert sorted(r["name"] for r in rows) == _folders(out)  # one row per item: never run twice to success
    assert max(r["attempts"] for r in rows) == 2  # the killed worker's item, retried
    assert str(killed[0]) not in {r["worker"].rsplit(":", 1)[1] for r in rows if r["attempts"] == 2}
    assert_same_outputs(out, serial_out)
    # --resume: everything is done, nothing rerun, nothing added
    assert _run(data, out, "--resume") == 0
    again = read_index(out / "index.jsonl")[len(rows):]
    assert len(again) == N and {r["status"] for r in again} == {"skipped"}
    assert _folders(out) == _folders(serial_out) and not [p for p in (out / ".done").iterdir() if p.name[0] == "."]


def test_an_item_whose_worker_always_dies_is_retried_then_failed_the_rest_done():
    jobs = [Job(k, f"j{k}") for k in range(4)] + [Job(9, "poison")]
    import toy_cli

    report = run_batch(jobs, setup=toy_cli.poison_setup, engine=EngineConfig("local", workers=2, retries=1))
    status = {i.name: i for i in report.items}
    assert [status[f"j{k}"].status for k in range(4)] == ["ok"] * 4
    bad = status["poison"]
    assert bad.status == "failed" and bad.attempts == 2 and "killed by SIGKILL" in bad.error, bad


def test_workers_that_cannot_load_their_models_stop_the_batch_with_one_error():
    import toy_cli

    from recon3d.batch.engines import EngineError

    with pytest.raises(EngineError, match="could not load its models: AssetError: model.npz: checksum mismatch"):
        run_batch([Job(0, "a"), Job(1, "b")], setup=toy_cli.failing_setup, engine=EngineConfig("local", workers=1))


# -- bad inputs in a manifest -----------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["serial", "local"])
def test_manifest_with_a_bad_path_and_a_corrupt_image(data, tmp_path, engine, capsys):
    d = data[2]
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,landmarks\n" + "".join(f"{d}/img/p{k}.png,{d}/lm.txt\n" for k in range(3))
                        + f"{tmp_path}/nope.png,{d}/lm.txt\ncorrupt.png,{d}/lm.txt\n")
    out = tmp_path / "out"
    rc = cli.main(["--manifest", str(manifest), "--out", str(out), "--model", str(data[0]), *FAST,
                   "--engine", engine, "--workers", "2"])
    assert rc == 1
    rows = {r["name"]: r for r in read_index(out / "index.jsonl")}
    failed = {n: r for n, r in rows.items() if r["status"] == "failed"}
    assert sorted(n.split("-")[0] for n in failed) == ["corrupt", "nope"]
    assert all(r["error"] and r["expected"] and "unexpected" not in r["error"] for r in failed.values()), failed
    assert sum(r["status"] == "ok" for r in rows.values()) == 3
    assert len(_folders(out)) == 3 and _complete(out, _folders(out))
    assert sorted(p.stem for p in (out / ".done").iterdir()) == _folders(out)  # markers only for the done
    err = capsys.readouterr().err
    assert err.count("FAILED") == 2 and "Traceback" not in err


# -- manifests, names, usage ---------------------------------------------------------------------------
def test_manifests_are_streamed_and_names_depend_on_the_row_only(tmp_path):
    txt = tmp_path / "list.txt"
    txt.write_text("# photos\na/001.jpg\n\nb/001.jpg\n  a/./001.jpg  \n")
    jobs = list(iter_manifest(txt))
    assert [j.source for j in jobs] == [tmp_path / "a/001.jpg", tmp_path / "b/001.jpg", tmp_path / "a/./001.jpg"]
    assert jobs[0].name == manifest_name("a/001.jpg") == jobs[2].name != jobs[1].name
    assert jobs[0].name.startswith("001-") and count_manifest(txt) == 3
    csv_file = tmp_path / "m.csv"
    csv_file.write_text("path,name,landmarks\nx.png,first,x.pts\ny.png,,\n")
    a, b = iter_manifest(csv_file)
    assert (a.name, a.column("landmarks"), b.column("landmarks")) == ("first", str(tmp_path / "x.pts"), None)
    assert b.name == manifest_name("y.png")
    # a generator: rows come one by one, a bad row fails only when reached
    csv_file.write_text("path,name\nx.png,ok\ny.png,../evil\n")
    it = iter_manifest(csv_file)
    assert next(it).name == "ok"
    with pytest.raises(ManifestError, match="cannot be an output name"):
        next(it)
    (tmp_path / "nopath.csv").write_text("file\nx.png\n")
    with pytest.raises(ManifestError, match="'path' column"):
        list(iter_manifest(tmp_path / "nopath.csv"))


def test_engine_ray_without_ray_is_one_line_and_exit_2(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert _run(data, tmp_path / "out", "--engine", "ray") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'recon3d[ray]'" in err, err
    assert _run(data, tmp_path / "out", "--workers", "0") == 2


def test_done_marker_needs_its_own_input_and_every_output(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a").mkdir()
    markers = DoneMarkers(tmp_path)
    job = Job(tmp_path / "a.png", "a")
    markers.write(job, [tmp_path / "o" / "a"])
    assert markers.is_done(job)
    assert not markers.is_done(Job(tmp_path / "other.png", "a"))  # another input with that name
    (tmp_path / "o" / "a").rmdir()
    assert not markers.is_done(job)
