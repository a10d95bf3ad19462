"""Remote input files: ``root://`` (XRootD), ``s3://`` and ``https://`` (or ``http://``) URLs.

A remote file is read where it is (uproot's fsspec sources for ROOT, fsspec file objects
for parquet); nothing is copied. Its identity comes from what the server already knows,
asked with one cheap request:

- ``root://``: ``stat`` (size, modification time), then the server's checksum through
  the query-checksum request (``{"adler32": ..., "size": ...}``, or whichever algorithm
  the server is configured with); a server without checksums answers "unsupported";
- ``s3://``: ``HeadObject`` (size, ETag, LastModified and any stored SHA/CRC checksum):
  ``{"s3_etag": ..., "size": ...}`` plus e.g. ``"s3_crc32"``. The ETag is an opaque
  version of the object (an MD5 only for single-part uploads);
- ``https://``: ``HEAD`` (Content-Length, ETag, Last-Modified): ``{"http_etag": ...,
  "url": ..., "size": ...}``. An ETag means something only on the server that made it,
  so the URL is part of that key.

Where no checksum comes back, the config must declare the dataset's ``version:``
(``analysis/io/datasets.py``). Transient failures (connection errors, timeouts, HTTP 5xx,
XRootD server errors) are retried :data:`ATTEMPTS` times with a doubling backoff
(``HEIRLOOM_REMOTE_BACKOFF`` seconds first, default 0.5), then reported as one
:class:`~analysis.errors.InputFileError` naming the URL and the last error; a missing
file is reported at once (docs/remote-data.md).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from analysis.errors import HeirloomError, InputFileError

T = TypeVar("T")

#: URL schemes read remotely; those that can list a folder (globs)
SCHEMES = ("root", "s3", "https", "http")
LISTABLE = ("root", "s3")
#: tries of one remote operation before it is reported
ATTEMPTS = 3
#: seconds one request to a server may take
TIMEOUT = 60
#: XRootD server errors worth another try (kXR_FSError, IOError, NoMemory, ServerError,
#: noserver, inProgress, Overloaded, ReqTimedOut, TimerExpired); others are final
_XRD_TRANSIENT = {3005, 3007, 3008, 3012, 3014, 3020, 3024, 3034, 3035}
_XRD_NOT_FOUND, _XRD_UNSUPPORTED = 3011, 3013
#: S3 object checksums (HeadObject with ChecksumMode=ENABLED), strongest first
_S3_CHECKSUMS = ("ChecksumSHA256", "ChecksumSHA1", "ChecksumCRC64NVME", "ChecksumCRC32C", "ChecksumCRC32")


def scheme(path: str | os.PathLike) -> str:
    """The URL scheme of ``path`` if it is read remotely, else ``""``.

    >>> scheme("root://eospublic.cern.ch//eos/a.root"), scheme("S3://b/k"), scheme("/data/a.root")
    ('root', 's3', '')
    """
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", str(path))
    name = match.group(1).lower() if match else ""
    return name if name in SCHEMES else ""


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a URL read remotely (root://, s3://, https://, http://).

    >>> is_remote("s3://bucket/nano.root"), is_remote("data/nano.root"), is_remote("file:///x")
    (True, False, False)
    """
    return bool(scheme(path))


def url_path(url: str) -> str:
    """The path part of ``url`` (no host, query or fragment).

    >>> url_path("root://host:1094//store/a.root?xrd.wantprot=krb5"), url_path("s3://bucket/dir/b.parquet")
    ('//store/a.root', '/dir/b.parquet')
    """
    return urllib.parse.urlsplit(url).path


def file_name(url: str) -> str:
    """The last component of a URL's path (provenance shows it).

    >>> file_name("root://eospublic.cern.ch//eos/opendata/cms/nano.root")
    'nano.root'
    """
    return url_path(url).rstrip("/").rpartition("/")[2]


def has_glob(url: str) -> bool:
    """Whether a URL is a pattern: ``*`` or ``[...]`` (and ``?`` for s3://; in root:// and
    https:// URLs ``?`` starts the query string).

    >>> has_glob("root://h//d/*.root"), has_glob("s3://b/f?.root"), has_glob("https://h/f.root?token=x")
    (True, True, False)
    """
    chars = "*?[" if scheme(url) == "s3" else "*["
    return any(c in url for c in chars)


@dataclass(frozen=True)
class RemoteStat:
    """What one cheap request tells of a remote file: its size, a ``stamp`` (the fields
    that change when the file does: a cached identity is reused while it is unchanged)
    and the checksum fields that came with it (empty for XRootD: it needs a query)."""

    size: int
    stamp: dict
    checksum: dict = field(default_factory=dict)


# ---- retries ------------------------------------------------------------------------------
_MISSING, _PERMANENT, _TRANSIENT = "missing", "permanent", "transient"
_NETWORK_ERRORS = {"ClientError", "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                   "ConnectionClosedError", "HTTPClientError", "ProtocolError"}


def _classify(err: BaseException) -> str:
    """missing (not retried, named as missing), permanent (not retried) or transient."""
    status = getattr(err, "status", None)
    if isinstance(status, int) and 400 <= status < 600:
        if status in (404, 410):
            return _MISSING
        return _TRANSIENT if status >= 500 or status in (408, 429) else _PERMANENT
    text = str(err).lower()
    if isinstance(err, FileNotFoundError) or f"[{_XRD_NOT_FOUND}]" in text or "no such file" in text:
        return _MISSING
    if isinstance(err, (HeirloomError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return _PERMANENT
    if isinstance(err, (OSError, TimeoutError, asyncio.TimeoutError)):
        return _TRANSIENT
    names = {cls.__name__ for cls in type(err).__mro__}
    return _TRANSIENT if names & _NETWORK_ERRORS else _PERMANENT


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def with_retries(url: str, what: str, call: Callable[[], T], backoff: float | None = None) -> T:
    """``call()``, tried up to :data:`ATTEMPTS` times while it fails with a transient
    error (a connection error, a timeout, a server error), waiting ``backoff`` seconds
    (``HEIRLOOM_REMOTE_BACKOFF``, default 0.5) then twice as long... A missing file or a
    final error is not retried. Every failure ends as one InputFileError naming ``url``.

    >>> def flaky(tries=[]):
    ...     tries.append(1)
    ...     if len(tries) < 3:
    ...         raise TimeoutError("read timed out")
    ...     return len(tries)
    >>> with_retries("root://h//a.root", "reading", flaky, backoff=0)
    3
    >>> with_retries("root://h//a.root", "reading", lambda: 1 / 0, backoff=0)
    Traceback (most recent call last):
    analysis.errors.InputFileError: cannot read input file root://h//a.root: reading: ZeroDivisionError: division by zero
    """
    if backoff is None:
        backoff = float(os.environ.get("HEIRLOOM_REMOTE_BACKOFF", "0.5"))
    if scheme(url) == "root":
        _configure_xrootd()
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        try:
            return call()
        except HeirloomError:
            raise
        except Exception as err:      # noqa: BLE001  (classified: every failure becomes one line)
            kind = _classify(err)
            if kind == _MISSING:
                raise InputFileError(url, f"no such file on the server ({what}: {_describe(err)})") from None
            if kind == _PERMANENT:
                raise InputFileError(url, f"{what}: {type(err).__name__}: {_describe(err)}") from None
            last = err
        if attempt + 1 < ATTEMPTS and backoff > 0:
            time.sleep(backoff * 2 ** attempt)
    raise InputFileError(url, f"{what} failed {ATTEMPTS} times; last error: {type(last).__name__}: "
                              f"{_describe(last or OSError())}")


# ---- XRootD ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _configure_xrootd() -> None:
    """The XRootD client's own defaults wait minutes: a refused connection is retried 5
    times over 2 minutes and a request may take 30 minutes. Here a refused connection fails
    at once (:func:`with_retries` tries again) and a request gives up after 5 minutes;
    ``XRD_CONNECTIONRETRY`` and ``XRD_REQUESTTIMEOUT`` set in the environment win."""
    from XRootD import client

    if "XRD_CONNECTIONRETRY" not in os.environ:
        client.EnvPutInt("ConnectionRetry", 1)
    if "XRD_REQUESTTIMEOUT" not in os.environ:
        client.EnvPutInt("RequestTimeout", 5 * TIMEOUT)


def _xrootd_split(url: str) -> tuple[str, str]:
    """``root://host:port//a/b.root`` -> (``root://host:port/``, ``/a/b.root``).

    >>> _xrootd_split("root://127.0.0.1:1094//data/a.root?x=1")
    ('root://127.0.0.1:1094/', '/data/a.root?x=1')
    """
    server, _, path = url.partition("://")[2].partition("/")
    return f"{scheme(url)}://{server}/", "/" + path.lstrip("/")


def _xrootd_check(status: Any) -> None:
    """Raise what a failed XRootD request means: missing, final (ValueError) or transient (OSError)."""
    if status.ok:
        return
    message = " ".join(str(status.message).split())
    if int(status.errno) == _XRD_NOT_FOUND:
        raise FileNotFoundError(message)
    if int(status.code) == 400 and int(status.errno) not in _XRD_TRANSIENT:   # the server's final answer
        raise ValueError(message)
    raise OSError(message)                  # a client-side failure (connection, timeout) or a busy server


def _xrootd_stat(url: str) -> RemoteStat:
    from XRootD import client
    from XRootD.client.flags import StatInfoFlags

    server, path = _xrootd_split(url)
    status, info = client.FileSystem(server).stat(path, timeout=TIMEOUT)
    _xrootd_check(status)
    if info.flags & StatInfoFlags.IS_DIR:
        raise IsADirectoryError("a directory, not a file")
    return RemoteStat(int(info.size), {"size": int(info.size), "mtime": int(info.modtime), "id": str(info.id)})


def _xrootd_checksum(url: str) -> dict:
    """``{algorithm: value}`` from the server's query-checksum answer (``b'adler32 062c0215\\x00'``);
    ``{}`` when the server computes no checksums."""
    from XRootD import client
    from XRootD.client.flags import QueryCode

    server, path = _xrootd_split(url)
    status, answer = client.FileSystem(server).query(QueryCode.CHECKSUM, path, timeout=TIMEOUT)
    if not status.ok and int(status.errno) == _XRD_UNSUPPORTED:
        return {}
    _xrootd_check(status)
    words = (answer or b"").rstrip(b"\x00").decode(errors="replace").split()
    return {words[0].lower(): words[1].lower()} if len(words) == 2 else {}


# ---- S3 and HTTP ----------------------------------------------------------------------------
def _s3_stat(url: str) -> RemoteStat:
    import fsspec

    parts = urllib.parse.urlsplit(url)
    head = fsspec.filesystem("s3").call_s3("head_object", Bucket=parts.netloc, Key=parts.path.lstrip("/"),
                                           ChecksumMode="ENABLED")
    size, etag = int(head["ContentLength"]), str(head.get("ETag", "")).strip('"')
    checksum = {"s3_etag": etag} if etag else {}
    strongest = next((name for name in _S3_CHECKSUMS if head.get(name)), None)
    if strongest:
        checksum["s3_" + strongest[len("Checksum"):].lower()] = str(head[strongest])
    modified = head.get("LastModified")
    return RemoteStat(size, {"size": size, "etag": etag, "last_modified": str(modified or "")}, checksum)


def _http_stat(url: str) -> RemoteStat:
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "heirloom"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:    # noqa: S310 (http/https only)
        headers = response.headers
    if headers.get("Content-Length") is None:
        raise ValueError("the server gives no Content-Length (a file read in ranges needs a size)")
    size, etag = int(headers["Content-Length"]), headers.get("ETag", "")
    checksum = {"http_etag": etag, "url": url} if etag else {}
    return RemoteStat(size, {"size": size, "etag": etag, "last_modified": headers.get("Last-Modified", "")},
                      checksum)


_STAT = {"root": _xrootd_stat, "s3": _s3_stat, "https": _http_stat, "http": _http_stat}


def stat(url: str) -> RemoteStat:
    """Size, stamp and (S3, HTTP) checksum of a remote file: one request, retried.

    >>> stat("root://127.0.0.1:1094//data/nano.root")              # doctest: +SKIP
    RemoteStat(size=377623, stamp={'size': 377623, 'mtime': 1796105535, 'id': '9437722481589760'}, checksum={})
    """
    return with_retries(url, "stat", lambda: _STAT[scheme(url)](url))


def checksum(url: str, found: RemoteStat) -> dict:
    """The fields that identify the content of ``url`` besides its size: what ``found``
    (:func:`stat`) brought, or for XRootD the answer of a query-checksum request; ``{}``
    when the server offers none.

    >>> checksum("s3://bucket/a.root", RemoteStat(10, {}, {"s3_etag": "960fa268"}))
    {'s3_etag': '960fa268'}
    """
    if found.checksum or scheme(url) != "root":
        return dict(found.checksum)
    return with_retries(url, "query checksum", lambda: _xrootd_checksum(url))


# ---- listing and reading --------------------------------------------------------------------
def glob(pattern: str) -> list[str]:
    """The files whose URLs match ``pattern`` (root:// or s3://), sorted; one listing, retried.

    >>> glob("s3://bucket/nanoaod/*.root")                          # doctest: +SKIP
    ['s3://bucket/nanoaod/a.root', 's3://bucket/nanoaod/b.root']
    """
    import fsspec

    def listing() -> list[str]:
        fs, path = fsspec.core.url_to_fs(pattern)
        found = fs.glob(path, detail=True)
        return sorted(fs.unstrip_protocol(name) for name, info in found.items() if info.get("type") != "directory")

    return with_retries(pattern, "list", listing)


def open_file(url: str) -> Any:
    """A binary file object reading ``url`` in ranges (fsspec): for parquet footers and magic bytes.

    >>> with open_file("s3://bucket/events.parquet") as stream:      # doctest: +SKIP
    ...     stream.read(4)
    b'PAR1'
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs.open(path, "rb")


def read_magic(url: str) -> bytes:
    """The first four bytes of a remote file (to tell parquet, ``PAR1``, from ROOT).

    >>> read_magic("root://127.0.0.1:1094//data/events.dat")        # doctest: +SKIP
    b'root'
    """
    def head() -> bytes:
        with open_file(url) as stream:
            return bytes(stream.read(4))

    return with_retries(url, "read", head)
