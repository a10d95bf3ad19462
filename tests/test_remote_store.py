"""A store on a real S3 server (moto's, over HTTP) and a real XRootD server, shared by
clones that each have their own local cache (``HEIRLOOM_STORE=s3://...``, ``root://...``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, small_demo, write_config

# the tiny demo without single top: a dozen tasks, seconds each
SHARED_DEMO = """\
extends: tiny.yaml
name: shared
datasets: {single_top_s_chan: null, single_top_t_chan: null, single_top_tW: null}
model: {samples: {single_top: null}}
skim: {chunk_size: 50000}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shared-demo")
    small_demo(folder, name="tiny")
    return write_config(folder, "shared.yaml", SHARED_DEMO)


def _s3(s3_server: dict):
    """A client of the test S3 server (s3fs), apart from the code under test."""
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server["AWS_ENDPOINT_URL"]}, skip_instance_cache=True,
                             key=s3_server["AWS_ACCESS_KEY_ID"], secret=s3_server["AWS_SECRET_ACCESS_KEY"])


def _bucket(s3_server: dict, name: str) -> str:
    _s3(s3_server).call_s3("create_bucket", Bucket=name)
    return f"s3://{name}/store"


def _env(server: dict, url: str, cache: Path, **extra) -> dict:
    return dict(os.environ, **server, HEIRLOOM_STORE=url, HEIRLOOM_CACHE=str(cache),
                PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", **extra)


def _run(args: list, env: dict, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args[:3]))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _law(task: str, config: Path, env: dict, *args, check=True) -> subprocess.CompletedProcess:
    return _run([str(VENV_BIN / "law"), "run", task, "--config", str(config), *args], env, check)


def _heirloom(env: dict, *args, check=True) -> subprocess.CompletedProcess:
    return _run([str(VENV_BIN / "heirloom"), *args], env, check)


def _requests(server: dict) -> int:
    return len(Path(server["HEIRLOOM_S3_LOG"]).read_text().splitlines())


def _cached(cache: Path) -> dict:
    """``{(family, key): provenance}`` of the objects in a local cache."""
    return {(p.parts[-4], p.parts[-2]): json.loads(p.read_text())
            for p in sorted((cache / "objects").glob("*/*/*/provenance.json"))}


def _backend(server: dict, url: str, monkeypatch):
    for name, value in server.items():
        monkeypatch.setenv(name, value)
    from analysis.store.remote import open_backend

    return open_backend(url)


def test_a_second_clone_runs_nothing_and_downloads_only_what_it_reads(s3_server, config, tmp_path):
    """Clone A runs the demo into the S3 store; clone B (its own cache) runs no task for
    ``law run Plot``, with one listing request, and ``heirloom show`` downloads only the fit
    and the plots, byte-identical to A's."""
    url = _bucket(s3_server, "two-clones")
    first, second = tmp_path / "clone-a", tmp_path / "clone-b"
    _law("Plot", config, _env(s3_server, url, first))
    made = _cached(first)
    assert {family for family, _ in made} >= {"Generate", "Skim", "Select", "Histograms", "Fit", "Plot"}

    before = _requests(s3_server)
    rerun = _law("Plot", config, _env(s3_server, url, second))
    assert "done in" not in rerun.stdout + rerun.stderr
    assert not (second / "runs.jsonl").exists() and not _cached(second)
    assert _requests(s3_server) - before == 1                     # one listing of the Plot family

    shown = _heirloom(_env(s3_server, url, second), "show", "--config", str(config)).stdout
    assert str(second) in shown and "ttbar_norm" in shown
    fetched = _cached(second)
    assert {family for family, _ in fetched} == {"Fit", "Plot"}
    for family, key in fetched:
        folder = Path("objects") / family / key[:2] / key
        for name in fetched[(family, key)]["outputs"]:
            assert (second / folder / name).read_bytes() == (first / folder / name).read_bytes()


def test_concurrent_first_runs_commit_one_object_per_key(s3_server, config, tmp_path):
    """Two clones start the same analysis at once against one empty S3 store: both succeed,
    every key has one record and one set of files, and every object is intact."""
    url = _bucket(s3_server, "race")
    runs = [subprocess.Popen([str(VENV_BIN / "law"), "run", "Histograms", "--config", str(config)], cwd=ROOT,
                             env=_env(s3_server, url, tmp_path / f"clone-{n}"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for n in (1, 2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]

    fs = _s3(s3_server)
    parts = [path.split("/") for path in fs.find("race/store/objects")]   # race/store/objects/F/kk/key/...
    records = {(p[3], p[5]): json.loads(fs.cat("/".join(p))) for p in parts if p[6] == "provenance.json"}
    cached = [set(_cached(tmp_path / f"clone-{n}")) for n in (1, 2)]
    assert set(records) == cached[0] | cached[1] and len(records) >= 10    # a clone reads what it needs only
    written = {(p[3], p[5], p[7]) for p in parts if p[6] == "g"}
    assert written == {(family, key, record["remote_generation"]) for (family, key), record in records.items()}
    checked = _heirloom(_env(s3_server, url, tmp_path / "checker"), "verify", "--all").stdout
    assert f"{len(records)} objects" in checked and ", 0 damaged" in checked


def test_a_commit_killed_midway_leaves_no_complete_object(s3_server, tmp_path, monkeypatch):
    """A process killed while it uploads an object's files leaves files that no record
    names: the key does not count as complete, a later commit succeeds, and ``gc``
    removes the leftovers."""
    url = _bucket(s3_server, "killed")
    stage = tmp_path / "stage"
    stage.mkdir()
    for n in range(300):
        (stage / f"part{n:03d}.bin").write_bytes(os.urandom(100_000))
    (stage / "provenance.json").write_text(json.dumps({"key": "ab" * 20, "outputs": {}}))
    code = ("import json, pathlib\nfrom analysis.store.remote import open_backend\n"
            f"stage = pathlib.Path({str(stage)!r})\n"
            f"open_backend({url!r}).commit('Skim', {'ab' * 20!r}, stage, json.loads((stage / 'provenance.json').read_text()))\n")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env(s3_server, url, tmp_path / "c"))
    backend = _backend(s3_server, url, monkeypatch)
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None:
        if backend.fs.find("killed/store/objects/Skim/"):
            child.send_signal(signal.SIGKILL)
            break
        backend.fs.invalidate_cache()
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the upload finished before it could be killed"
    uploaded = backend.fs.find("killed/store/objects/Skim/")
    assert 0 < len(uploaded) < 300 and not any(p.endswith("provenance.json") for p in uploaded)
    assert backend.list_family("Skim") == {} and not backend.has_record("Skim", "ab" * 20)

    from analysis.store.remote import RemoteStore
    from tasks import remote_upkeep

    shared = RemoteStore(url, backend, tmp_path / "cache")
    (stage / "part000.bin").write_bytes(b"second attempt")
    record = {"key": "ab" * 20, "outputs": {"part000.bin": "x"}}
    assert backend.commit("Skim", "ab" * 20, stage, record) is True
    assert shared.complete("Skim", "ab" * 20)
    _, orphans = remote_upkeep.collect(shared, keep=None, older_than_days=1e9, orphan_age_s=0)
    killed = {path.split("/")[7] for path in uploaded}                    # .../<key>/g/<attempt>/<file>
    assert len(killed) == 1 and set(orphans) >= set(uploaded)            # (uploads in flight may land late)
    assert {path.split("/")[7] for path in orphans} == killed
    remote_upkeep.remove(shared, [], orphans)
    backend.fs.invalidate_cache()
    assert backend.read_record("Skim", "ab" * 20)["remote_generation"]
    assert len(backend.fs.find("killed/store/objects/Skim/")) == 301          # the committed object alone


def test_the_first_writer_wins_and_the_loser_leaves_nothing(s3_server, xrootd_server, tmp_path, monkeypatch):
    """On both protocols a second commit of a key is refused (S3: conditional put; XRootD:
    a rename onto an existing folder) and leaves no files; the first writer's object is
    what every reader gets."""
    s3_url = _bucket(s3_server, "first-wins")
    xrootd_url = f"{xrootd_server['HEIRLOOM_XROOTD_URL']}/first-wins"
    monkeypatch.setenv("HEIRLOOM_CACHE", str(tmp_path / "cache"))
    for url in (s3_url, xrootd_url):
        backend = _backend({**s3_server, **xrootd_server}, url, monkeypatch)
        stages = []
        for n, text in enumerate(("first", "second")):
            stage = tmp_path / f"{url.split(':')[0]}-{n}"
            stage.mkdir()
            (stage / "result.json").write_text(text)
            stages.append(stage)
        record = {"key": "cd" * 20, "outputs": {"result.json": "sha256:x"}}
        assert backend.commit("Fit", "cd" * 20, stages[0], dict(record, attempt=1)) is True
        assert backend.commit("Fit", "cd" * 20, stages[1], dict(record, attempt=2)) is False
        assert backend.read_record("Fit", "cd" * 20)["attempt"] == 1
        committed = backend.read_record("Fit", "cd" * 20)
        out = tmp_path / f"{url.split(':')[0]}-read.json"
        backend.download([(backend.file_path("Fit", "cd" * 20, committed, "result.json"), out)])
        assert out.read_text() == "first"
        assert list(backend.list_family("Fit")) == ["cd" * 20]
        assert backend.orphans("Fit", backend.list_family("Fit")) == []


def test_an_xrootd_store_is_shared_and_checks_itself(xrootd_server, config, tmp_path):
    """``HEIRLOOM_STORE=root://...``: a second cache reruns nothing; a file damaged on the
    server is found by ``heirloom verify --all``, taken out of the store, and recomputed."""
    url = f"{xrootd_server['HEIRLOOM_XROOTD_URL']}/group-store"
    first = _env(xrootd_server, url, tmp_path / "laptop")
    _law("Histograms", config, first)
    second = _env(xrootd_server, url, tmp_path / "ci")
    rerun = _law("Histograms", config, second)
    assert "done in" not in rerun.stdout + rerun.stderr and not _cached(tmp_path / "ci")

    served = Path(xrootd_server["HEIRLOOM_XROOTD_DATA"]) / "group-store" / "objects" / "Histograms"
    [damaged] = list(served.glob("*/*/histograms.json"))
    damaged.write_text(damaged.read_text().replace("1", "2", 1))
    verify = _heirloom(second, "verify", "--all", check=False)
    assert verify.returncode != 0 and "Histograms/" + damaged.parent.name[:12] in verify.stderr + verify.stdout
    assert not damaged.parent.exists()                               # out of the store, record kept aside
    assert list((Path(xrootd_server["HEIRLOOM_XROOTD_DATA"]) / "group-store" / "quarantine" / "Histograms").glob("*"))
    again = _law("Histograms", config, second)
    assert "Histograms[all] done in" in again.stdout + again.stderr
    assert (served / damaged.parent.parent.name / damaged.parent.name / "histograms.json").exists()

    third = _env(xrootd_server, url, tmp_path / "colleague")
    why = _heirloom(third, "why", "Histograms", "--config", str(config)).stdout
    assert f"up to date ({damaged.parent.name[:12]} in {url})" in why
    kept = _heirloom(third, "gc", "--config", str(config)).stdout
    assert "would remove" not in kept                                  # everything is reachable
    stranger = write_config(tmp_path, "other.yaml", f"extends: {config}\nname: other\nlumi: 5.0\n")
    before = {(p.parts[-3], p.name) for p in served.parent.glob("*/*/*")}
    removed = _heirloom(third, "gc", "--config", str(stranger), "--delete").stdout  # keeps what `other` reaches
    after = {(p.parts[-3], p.name) for p in served.parent.glob("*/*/*")}
    named = {tuple(line.split()[1].split("/")) for line in removed.splitlines() if line.startswith("remove ")}
    assert named == before - after and ("Histograms", damaged.parent.name) in named and after


def test_the_cache_evicts_the_least_recently_used_objects(s3_server, config, tmp_path, monkeypatch):
    """A cache bounded by ``HEIRLOOM_CACHE_SIZE`` keeps the objects used last and those in use."""
    url = _bucket(s3_server, "bounded")
    _law("Histograms", config, _env(s3_server, url, tmp_path / "writer"))
    from analysis.store.objects import entry
    from analysis.store.remote import RemoteStore

    backend = _backend(s3_server, url, monkeypatch)
    cache = tmp_path / "reader"
    skims = sorted(backend.list_family("Skim").values(), key=lambda listed: listed.key)[:3]
    reader = RemoteStore(url, backend, cache)
    for number, listed in enumerate(skims):
        reader.fetch(entry("Skim", listed.key, cache))
        os.utime(entry("Skim", listed.key, cache).path, (1000 + number, 1000 + number))   # used in this order
    sizes = [sum(f.stat().st_size for f in entry("Skim", s.key, cache).path.rglob("*")) for s in skims]
    later = RemoteStore(url, backend, cache)
    later.limit = sum(sizes) - sizes[1]
    later._used.add(str(entry("Skim", skims[0].key, cache).path))     # in use: kept although the oldest
    removed = later.evict()
    assert [p.name for p in removed] == [skims[1].key]
    assert entry("Skim", skims[0].key, cache).exists() and entry("Skim", skims[2].key, cache).exists()


def test_the_cache_is_walked_only_when_it_may_be_over_its_size(tmp_path, monkeypatch):
    """Counting what enters the cache spares a walk of every cached file on each fetch: the
    cache is walked once, then again only when the count passes the limit."""
    from analysis.store.objects import entry
    from analysis.store.remote import RemoteStore

    cache = tmp_path / "cache"
    store = RemoteStore("s3://nowhere/store", None, cache)
    store.limit = 2500
    walks = []
    real_evict = store.evict
    monkeypatch.setattr(store, "evict", lambda: walks.append(1) or real_evict())
    for number in range(4):                                   # four objects of 1000 bytes each
        target = entry("Skim", f"{number:02d}" + "a" * 38, cache)
        target.path.mkdir(parents=True)
        (target.path / "skim.root").write_bytes(b"x" * 1000)
        store._grew(target)
    assert len(walks) == 3               # the first count, then at 3000 and 3000 again (over 2500)
    assert sum(1 for p in (cache / "objects").glob("*/??/*") if p.is_dir()) == 2
