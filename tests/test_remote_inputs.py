"""Remote inputs (root://, s3://, http://) against real servers over the network: the same
results as local files, identities from the servers' checksums, globs, located errors,
bounded retries. The XRootD and S3 servers come from tests/services (conftest fixtures);
the HTTP server is Python's, on 127.0.0.1 in a thread."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from conftest import ROOT, SHARED, law_run, requires_shared, runs
from test_input_identity import write_events

BUCKET = "heirloom-remote-inputs"
DATASET = {"cms2015_files": ("cms2015_ttbar_agc_200ev.root", "ttbar_2015"),
           "nanoaod_v12": ("nano_tt_v12.root", "ttbar_v12")}


def fork(folder: Path, parent: str, name: str, files: list, extra: str = "") -> Path:
    """A fork of configs/<parent>.yaml whose dataset reads ``files`` (``files:`` is line 5)."""
    dataset = DATASET[parent][1]
    path = folder / f"{name}.yaml"
    path.write_text(f"extends: {ROOT / 'configs' / parent}.yaml\nname: {name}\ndatasets:\n  {dataset}:\n"
                    f"    files: {json.dumps(files)}\n{extra}")
    return path


def results(store: Path, name: str, dataset: str) -> tuple[dict, dict]:
    """Select's cutflow and Histograms' histograms of one analysis in ``store``."""
    cutflow = json.loads((store / "by-name" / name / "Select" / dataset / "cutflow.json").read_text())
    hists = json.loads((store / "by-name" / name / "Histograms" / "all" / "histograms.json").read_text())
    return cutflow, hists


def skim_provenance(store: Path, name: str, dataset: str) -> dict:
    return json.loads((store / "by-name" / name / "Skim" / f"{dataset}__0" / "provenance.json").read_text())


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    """The cutflows and histograms of the shared files read from the local disk (per config)."""
    store, done = tmp_path_factory.mktemp("local") / "store", {}

    def get(parent: str) -> tuple[dict, dict]:
        if parent not in done:
            law_run("Histograms", ROOT / "configs" / f"{parent}.yaml", store)
            done[parent] = results(store, parent, DATASET[parent][1])
        return done[parent]

    return get


@pytest.fixture(scope="module")
def xrootd(xrootd_server):
    """``(root URL of a file, its local path)`` maker for files the XRootD server exports."""
    data = Path(xrootd_server["HEIRLOOM_XROOTD_DATA"])

    def served(relative: str, source: Path | None = None) -> tuple[str, Path]:
        target = data / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            shutil.copyfile(source, target)
        return xrootd_server["HEIRLOOM_XROOTD_URL"] + "/" + relative, target

    return served


@pytest.fixture(scope="module")
def s3(s3_server):
    """An s3fs client of the S3 server with the bucket BUCKET; the AWS_* variables in ``.env``."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    client = s3fs.S3FileSystem(endpoint_url=s3_server["AWS_ENDPOINT_URL"], key=s3_server["AWS_ACCESS_KEY_ID"],
                               secret=s3_server["AWS_SECRET_ACCESS_KEY"], skip_instance_cache=True,
                               client_kwargs={"region_name": s3_server["AWS_DEFAULT_REGION"]})
    client.call_s3("create_bucket", Bucket=BUCKET)
    client.env = s3_server
    yield client
    s3fs.S3FileSystem.clear_instance_cache()      # the library's client points at this server


@pytest.fixture
def s3_env(s3, monkeypatch):
    """The S3 server's AWS_* variables in this process (for the library's own s3fs client)."""
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3.env


# ---- the same results as local files --------------------------------------------------------
@requires_shared("nanoaod")
@pytest.mark.parametrize("parent", sorted(DATASET))
def test_root_url_gives_the_cutflow_and_histograms_of_the_local_file(parent, xrootd, local_results, tmp_path):
    filename, dataset = DATASET[parent]
    url, _ = xrootd(f"shared/{filename}", SHARED / "nanoaod" / filename)
    config = fork(tmp_path, parent, f"{parent}_root", [url])
    law_run("Histograms", config, tmp_path / "store")
    cutflow, hists = results(tmp_path / "store", f"{parent}_root", dataset)
    local_cutflow, local_hists = local_results(parent)
    assert cutflow == local_cutflow and cutflow["events"]["all"] == 200
    assert hists == local_hists
    source = skim_provenance(tmp_path / "store", f"{parent}_root", dataset)["inputs"]["file"]
    assert source["file"] == url and source["name"] == filename
    assert set(source) == {"file", "name", "adler32", "size"}          # the server's checksum, not a hash
    assert source["size"] == (SHARED / "nanoaod" / filename).stat().st_size


@requires_shared("nanoaod")
def test_s3_url_gives_the_cutflow_and_histograms_of_the_local_file(s3, local_results, tmp_path):
    filename, dataset = DATASET["cms2015_files"]
    s3.put(str(SHARED / "nanoaod" / filename), f"{BUCKET}/shared/{filename}")
    url = f"s3://{BUCKET}/shared/{filename}"
    config = fork(tmp_path, "cms2015_files", "cms2015_s3", [url])
    law_run("Histograms", config, tmp_path / "store", env=s3.env)
    cutflow, hists = results(tmp_path / "store", "cms2015_s3", dataset)
    assert (cutflow, hists) == local_results("cms2015_files")
    source = skim_provenance(tmp_path / "store", "cms2015_s3", dataset)["inputs"]["file"]
    assert source["file"] == url and len(source["s3_etag"]) >= 32


@requires_shared("adl")
def test_parquet_over_root_and_s3_reads_the_rows_of_the_local_file(xrootd, s3, s3_env, tmp_path):
    from analysis.io.fileid import Manifest
    from analysis.io.skim import read_parquet_chunk

    local = SHARED / "adl" / "Run2012B_SingleMu-1000.parquet"
    s3.put(str(local), f"{BUCKET}/adl/events.pq")
    urls = [xrootd("adl/events.parquet", local)[0], xrootd("adl/events.dat", local)[0],   # .dat: by its magic bytes
            f"s3://{BUCKET}/adl/events.pq"]
    manifest = Manifest(tmp_path)
    reference = manifest.identify(local)
    branches = ["nJet", "Jet_pt", "MET_pt"]
    expected = read_parquet_chunk(str(local), branches, 100, 300)
    for url in urls:
        identity = manifest.identify(url)
        assert (identity.format, identity.entries, identity.branches) == ("parquet", 1000, reference.branches)
        got = read_parquet_chunk(url, branches, 100, 300)
        assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in expected.items()}


# ---- identity --------------------------------------------------------------------------------
def test_replacing_the_file_behind_a_root_url_changes_its_key_and_the_skims(xrootd, tmp_path):
    url, path = xrootd("replace/events.root")
    write_events(path)
    config = fork(tmp_path, "cms2015_files", "replaced", [url])
    store = tmp_path / "store"
    law_run("Skim", config, store, "--dataset", "ttbar_2015", "--chunk", "0")
    before = skim_provenance(store, "replaced", "ttbar_2015")["inputs"]["file"]
    size = path.stat().st_size
    write_events(path, scale=1.25)                 # other content, the same size (and ROOT UUID)
    mtime = path.stat().st_mtime + 10              # (a same-second rewrite: see the stamp test below)
    os.utime(path, (mtime, mtime))
    assert path.stat().st_size == size
    law_run("Skim", config, store, "--dataset", "ttbar_2015", "--chunk", "0")
    after = skim_provenance(store, "replaced", "ttbar_2015")["inputs"]["file"]
    assert before["size"] == after["size"] == size and before["adler32"] != after["adler32"]
    keys = [r["key"] for r in runs(store) if r["task"] == "Skim"]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_the_stamp_is_trusted_until_a_rehash_asks_the_server_again(xrootd, tmp_path, monkeypatch):
    from analysis.io.fileid import Manifest
    from tasks.cli import verify_inputs

    url, path = xrootd("stamp/events.root")
    write_events(path)
    first = Manifest(tmp_path)
    before = first.identify(url).key()
    first.save()
    stat = path.stat()
    write_events(path, scale=1.25)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))       # the stamp (size, mtime, id) unchanged
    second = Manifest(tmp_path)
    assert second.identify(url).key() == before                   # a no-op trusts the stamp
    assert second.cached_key(url, "Events") == before
    monkeypatch.setenv("HEIRLOOM_STORE", str(tmp_path))
    lines, changed = verify_inputs()                               # `heirloom verify --inputs`
    assert changed == 1 and any(line.startswith(f"CHANGED  {url}") and "now adler32:" in line for line in lines)
    rehashed = Manifest(tmp_path).identify(url).key()
    assert rehashed["adler32"] != before["adler32"] and rehashed["size"] == before["size"]
    assert verify_inputs()[1] == 0


def test_replacing_an_s3_object_changes_its_key(s3, s3_env, tmp_path):
    from analysis.io.fileid import Manifest

    write_events(tmp_path / "a.root")
    write_events(tmp_path / "b.root", scale=1.25)
    url = f"s3://{BUCKET}/replace/events.root"
    s3.put(str(tmp_path / "a.root"), url)
    before = Manifest(tmp_path).identify(url)
    s3.put(str(tmp_path / "b.root"), url)
    after = Manifest(tmp_path).identify(url)
    assert before.entries == after.entries == 400 and before.path == url and before.name == "events.root"
    assert before.key()["size"] == after.key()["size"] and before.key()["s3_etag"] != after.key()["s3_etag"]


# ---- globs and errors ------------------------------------------------------------------------
def test_globs_over_root_and_s3_list_the_files(xrootd, s3, s3_env, tmp_path):
    from analysis.errors import ConfigError
    from analysis.io.datasets import input_files
    from analysis.load import load_config

    write_events(tmp_path / "events.root")
    expected = {"root": [xrootd(f"glob/{n}", tmp_path / "events.root")[0] for n in ("a.root", "b.root")],
                "s3": [f"s3://{BUCKET}/glob/a.root", f"s3://{BUCKET}/glob/b.root"]}
    xrootd("glob/notes.txt")[1].write_text("not an input")
    xrootd("glob/sub.root/c.root", tmp_path / "events.root")        # a folder that matches is not a file
    for name in ("b.root", "a.root", "notes.txt"):
        s3.put(str(tmp_path / "events.root"), f"{BUCKET}/glob/{name}")
    patterns = {"root": expected["root"][0].replace("a.root", "*.root"), "s3": f"s3://{BUCKET}/glob/*.root"}
    for protocol, pattern in patterns.items():
        cfg = load_config(fork(tmp_path, "cms2015_files", f"glob_{protocol}", [pattern]))
        assert input_files(cfg, "ttbar_2015") == expected[protocol]
    for pattern, message in ((patterns["root"].replace("*.root", "none*.root"), "no file matches"),
                             (f"s3://{BUCKET}/glob/none*.root", "no file matches"),
                             ("https://127.0.0.1:9/data/*.root", "cannot list")):
        cfg = load_config(fork(tmp_path, "cms2015_files", "glob_bad", [pattern]))
        with pytest.raises(ConfigError, match=message) as err:
            input_files(cfg, "ttbar_2015")
        assert err.value.file == str(tmp_path / "glob_bad.yaml") and err.value.line == 5


def test_a_missing_root_file_is_one_line_with_the_url_and_the_config_line(xrootd, tmp_path):
    url, _ = xrootd("missing/nope.root")
    config = fork(tmp_path, "cms2015_files", "missing", [url])
    proc = law_run("Select", config, tmp_path / "store", "--dataset", "ttbar_2015", check=False)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "InputFileError" in line]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"cannot read input file {url}: no such file on the server" in lines[-1]
    assert f"listed at {config}:5 key 'datasets.ttbar_2015.files.0'" in lines[-1]
    assert not (tmp_path / "store" / "objects").exists()


def test_a_missing_s3_object_names_the_url_and_the_config_line(s3, s3_env, tmp_path):
    from analysis.errors import InputFileError
    from analysis.io.datasets import identify
    from analysis.io.fileid import Manifest
    from analysis.load import load_config

    url = f"s3://{BUCKET}/missing/nope.root"
    cfg = load_config(fork(tmp_path, "cms2015_files", "missing_s3", [url]))
    with pytest.raises(InputFileError) as err:
        identify(cfg, "ttbar_2015", url, Manifest(tmp_path))
    assert str(err.value).startswith(f"cannot read input file {url}: no such file on the server")
    assert f"missing_s3.yaml:5 key 'datasets.ttbar_2015.files.0'" in str(err.value)
    assert "\n" not in str(err.value)


# ---- a server without checksums, retries: HTTP ---------------------------------------------
class FileServer(http.server.BaseHTTPRequestHandler):
    """Files of ``root`` with byte ranges (as uproot reads them), an ETag only if ``etag``,
    the next ``fail[method]`` requests answered 503; every request is logged."""

    root: Path
    etag = False
    fail: dict = {}
    log: list = []

    def log_message(self, *args):
        pass

    def _start(self) -> Path | None:
        self.log.append(self.command)
        if self.fail.get(self.command, 0) > 0:
            self.fail[self.command] -= 1
            self.send_error(503, "busy")
            return None
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return None
        return path

    def _send(self, status: int, length: int, path: Path, extra: dict) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(length), "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
                   "Last-Modified": self.date_time_string(int(path.stat().st_mtime)), **extra}
        if self.etag:
            headers["ETag"] = f'"{path.stat().st_mtime_ns:x}-{path.stat().st_size:x}"'
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def do_HEAD(self):  # noqa: N802 (the handler's API)
        path = self._start()
        if path is not None:
            self._send(200, path.stat().st_size, path, {})

    def do_GET(self):  # noqa: N802
        path = self._start()
        if path is None:
            return
        data = path.read_bytes()
        spec = self.headers.get("Range", "")
        if not spec.startswith("bytes="):
            self._send(200, len(data), path, {})
            self.wfile.write(data)
            return
        first, _, last = spec[len("bytes="):].partition("-")
        start, stop = int(first), min(int(last) + 1 if last else len(data), len(data))
        self._send(206, stop - start, path, {"Content-Range": f"bytes {start}-{stop - 1}/{len(data)}"})
        self.wfile.write(data[start:stop])


@pytest.fixture(scope="module")
def http_files(tmp_path_factory):
    """An HTTP server on 127.0.0.1 serving a folder: ``(base URL, folder, handler class)``."""
    folder = tmp_path_factory.mktemp("http")
    handler = type("Handler", (FileServer,), {"root": folder, "fail": {}, "log": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder, handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_server(http_files, monkeypatch):
    monkeypatch.setenv("HEIRLOOM_REMOTE_BACKOFF", "0")        # retries without waiting
    base, folder, handler = http_files
    handler.etag, handler.fail, handler.log[:] = False, {}, []
    return base, folder, handler


@requires_shared("nanoaod")
def test_a_server_without_checksums_needs_a_declared_version(http_server, local_results, tmp_path):
    base, folder, handler = http_server
    filename, dataset = DATASET["cms2015_files"]
    shutil.copyfile(SHARED / "nanoaod" / filename, folder / filename)
    url = f"{base}/{filename}"
    config = fork(tmp_path, "cms2015_files", "http_unversioned", [url])
    proc = law_run("Select", config, tmp_path / "store", "--dataset", dataset, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{config}:5: key 'datasets.{dataset}.files.0': {url}: the server gives no checksum" in proc.stderr
    assert "declare 'version:" in proc.stderr
    config = fork(tmp_path, "cms2015_files", "http_versioned", [url], '    version: "2024-05"\n')
    law_run("Histograms", config, tmp_path / "store")
    assert results(tmp_path / "store", "http_versioned", dataset) == local_results("cms2015_files")
    source = skim_provenance(tmp_path / "store", "http_versioned", dataset)["inputs"]["file"]
    assert {k: source[k] for k in ("declared_version", "url", "size")} == {
        "declared_version": "2024-05", "url": url, "size": (folder / filename).stat().st_size}


def test_a_version_bump_changes_the_key_and_an_etag_replaces_it(http_server, tmp_path):
    from analysis.io.fileid import Manifest

    base, folder, handler = http_server
    write_events(folder / "events.root")
    url = f"{base}/events.root"
    first = Manifest(tmp_path).identify(url, version="1").key()
    assert first == {"declared_version": "1", "url": url, "size": (folder / "events.root").stat().st_size}
    assert Manifest(tmp_path).identify(url, version="2").key() != first
    handler.etag = True
    tagged = Manifest(tmp_path).identify(url, version="1").key()
    assert set(tagged) == {"http_etag", "url", "size"}


def test_a_no_op_asks_one_stat_per_remote_file(http_server, tmp_path):
    from analysis.io.fileid import Manifest

    base, folder, handler = http_server
    write_events(folder / "noop.root")
    url = f"{base}/noop.root"
    manifest = Manifest(tmp_path)
    key = manifest.identify(url, version="1").key()
    manifest.save()
    assert "GET" in handler.log                                    # the first time: entries and branches read
    handler.log[:] = []
    again = Manifest(tmp_path)                                     # a new process, the same store
    assert again.identify(url, version="1").key() == key and again.identify(url, version="1").key() == key
    assert handler.log == ["HEAD"]


def test_transient_errors_are_retried_a_bounded_number_of_times(http_server, tmp_path):
    from analysis.errors import InputFileError
    from analysis.io.fileid import Manifest
    from analysis.io.remote import ATTEMPTS

    base, folder, handler = http_server
    write_events(folder / "flaky.root")
    url = f"{base}/flaky.root"
    handler.fail["HEAD"] = ATTEMPTS - 1
    assert Manifest(tmp_path).identify(url, version="1").entries == 400
    assert handler.log.count("HEAD") == ATTEMPTS
    handler.fail["HEAD"], handler.log[:] = ATTEMPTS + 5, []
    with pytest.raises(InputFileError) as err:
        Manifest(tmp_path / "other").identify(url, version="1")
    assert handler.log == ["HEAD"] * ATTEMPTS
    assert str(err.value).startswith(f"cannot read input file {url}: stat failed {ATTEMPTS} times; last error: ")
    assert "503" in str(err.value) and "\n" not in str(err.value)
    handler.fail, handler.log[:] = {}, []
    with pytest.raises(InputFileError, match="no such file on the server"):
        Manifest(tmp_path).identify(f"{base}/nope.root", version="1")
    assert handler.log == ["HEAD"]                                 # a missing file is not retried


def test_a_failed_read_is_retried(http_server, tmp_path):
    import uproot

    from analysis.io.skim import read_chunk

    base, folder, handler = http_server
    write_events(folder / "read.root")
    with uproot.open(folder / "read.root") as local:
        expected = local["Events"]["Jet_pt"].array().tolist()
    handler.fail["GET"] = 1
    arrays = read_chunk(f"{base}/read.root", "Events", ["Jet_pt"], 0, 400)
    assert arrays["Jet_pt"].tolist() == expected
    assert handler.fail["GET"] == 0 and handler.log.count("GET") >= 2


def test_an_unreachable_xrootd_server_is_retried_then_named(monkeypatch, tmp_path):
    from analysis.errors import InputFileError
    from analysis.io.fileid import Manifest
    from analysis.io.remote import ATTEMPTS
    from conftest import free_port

    monkeypatch.setenv("HEIRLOOM_REMOTE_BACKOFF", "0")
    url = f"root://127.0.0.1:{free_port()}//data/events.root"       # nothing listens there
    with pytest.raises(InputFileError) as err:
        Manifest(tmp_path).identify(url)
    assert str(err.value).startswith(f"cannot read input file {url}: stat failed {ATTEMPTS} times; last error: ")
    assert "\n" not in str(err.value)
