"""ONNX Runtime sessions and inference on jagged event data.

A model is loaded from the bytes whose sha256 entered the key (never from its path, so
the file cannot change in between and an ONNX file cannot pull in "external data" from
elsewhere on disk). Sessions are single-threaded, so a result never depends on the
machine's cores, and cached per process by content and device: a worker of the futures
or Dask executor loads each model once.

``device: cuda`` asks for ONNX Runtime's CUDA execution provider and checks that the
session got it: when a CPU-only build or a missing driver would make ONNX Runtime fall
back to the CPU in silence, this raises instead. ``device: cpu`` uses the CPU provider.

Inference works on a flat float32 matrix (one row per candidate, one column per feature)
and the outputs get the rows' event structure back: a model that scores the 12
jet-parton assignments of each event gives a jagged ``[event][assignment]`` column.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from analysis.config.files import MiB, regular_file
from analysis.errors import InputError
from analysis.lazy import np

#: ONNX Runtime's execution providers for each ``device:``; the first one is required
PROVIDERS = {"cpu": ("CPUExecutionProvider",), "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider")}
MAX_MODEL_BYTES = 256 * MiB         # an ONNX model file (models.<name>.file)
_SESSIONS: dict[tuple[int, str, str], Any] = {}      # (pid, sha256, device) -> InferenceSession


def read_model(path: str | os.PathLike) -> bytes:
    """The bytes of a model file, after checking it is a regular file of bounded size
    (ValueError with a one-line message otherwise).

    >>> len(read_model("configs/models/agc_assignment.onnx")) > 1000
    True
    """
    return regular_file(path, limit=MAX_MODEL_BYTES, what="model file").read_bytes()


def sha256(data: bytes) -> str:
    """The sha256 of a model's bytes: what enters the key of the tasks that run it.

    >>> sha256(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def onnxruntime_version() -> str:
    """The installed ONNX Runtime distribution and version (it computes the outputs, so it
    enters the key of every task that runs a model), without importing it.

    >>> onnxruntime_version().startswith("onnxruntime")
    True
    """
    for distribution in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return f"{distribution}=={metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def load_session(data: bytes, device: str = "cpu", *, what: str = "model") -> Any:
    """An ``onnxruntime.InferenceSession`` of the model ``data`` on ``device``, single-threaded.

    Raises :class:`~analysis.errors.InputError` when the bytes are not a model ONNX
    Runtime can load, and when ``device`` is ``cuda`` but the session did not get the
    CUDA execution provider (a silent fall-back to the CPU is refused), as with the CPU-only
    ``onnxruntime`` of requirements.lock:

    >>> session = load_session(read_model("configs/models/agc_assignment.onnx"))
    >>> session.get_providers(), [i.name for i in session.get_inputs()]
    (['CPUExecutionProvider'], ['features'])
    >>> load_session(read_model("configs/models/agc_assignment.onnx"), "cuda")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    analysis.errors.InputError: model: device 'cuda' needs ONNX Runtime's CUDAExecutionProvider, but the session got only ['CPUExecutionProvider'] (available here: ...): install onnxruntime-gpu with a working CUDA, or set device: cpu
    """
    import warnings

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        with warnings.catch_warnings():          # "provider not available": checked below, loudly
            warnings.simplefilter("ignore")
            session = ort.InferenceSession(data, sess_options=options, providers=list(PROVIDERS[device]))
    except Exception as err:                     # onnxruntime's own exception types (InvalidProtobuf, Fail)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{what}: not an ONNX model that onnxruntime can load ({reason})") from None
    required = PROVIDERS[device][0]
    if required not in session.get_providers():
        raise InputError(f"{what}: device '{device}' needs ONNX Runtime's {required}, but the session got only "
                         f"{session.get_providers()} (available here: {', '.join(ort.get_available_providers())}): "
                         f"install onnxruntime-gpu with a working CUDA, or set device: cpu")
    return session


def session(path: str, digest: str, device: str = "cpu", *, what: str = "model") -> Any:
    """The session of the model file ``path`` whose content has sha256 ``digest``, made
    once per process (a forked worker makes its own). A file whose content changed since
    its digest was taken is refused.

    >>> path = "configs/models/agc_assignment.onnx"
    >>> session(path, sha256(read_model(path))) is session(path, sha256(read_model(path)))
    True
    """
    key = (os.getpid(), digest, device)
    if key not in _SESSIONS:
        try:
            data = read_model(path)
        except ValueError as err:
            raise InputError(f"{what}: {err}") from None
        if sha256(data) != digest:
            raise InputError(f"{what}: {path} changed since the config was read (sha256 {sha256(data)[:16]}..., "
                             f"expected {digest[:16]}...): run again")
        _SESSIONS[key] = load_session(data, device, what=what)
    return _SESSIONS[key]


def feature_matrix(value: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A float32 matrix (rows x features) from values whose last axis holds the features,
    and the number of rows of each event: ``[event][feature]`` is one row per event
    (counts None), ``[event][candidate][feature]`` one row per candidate.

    >>> import awkward as ak
    >>> matrix, counts = feature_matrix(ak.Array([[[1, 2], [3, 4]], [], [[5, 6]]]))
    >>> matrix.tolist(), counts.tolist()
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [2, 0, 1])
    """
    import awkward as ak

    array = value if isinstance(value, ak.Array) else ak.Array(np.asarray(value))
    counts = None
    if array.ndim == 3:
        counts = ak.to_numpy(ak.num(array, axis=1))
        array = ak.flatten(array, axis=1)
    elif array.ndim != 2:
        raise ValueError(f"the features must be [event][feature] or [event][candidate][feature], not {array.type}")
    try:
        matrix = ak.to_numpy(array, allow_missing=False)
    except (ValueError, TypeError):
        raise ValueError("every row needs the same number of features, and none may be missing") from None
    return np.ascontiguousarray(matrix, dtype=np.float32), counts


def stack_features(values: list) -> tuple[np.ndarray, np.ndarray | None]:
    """A float32 matrix from one value per feature: each ``[event]`` (one row per event)
    or ``[event][candidate]`` (one row per candidate), all of the same structure.

    >>> import awkward as ak
    >>> matrix, counts = stack_features([ak.Array([[1, 2], [3]]), ak.Array([[10, 20], [30]])])
    >>> matrix.tolist(), counts.tolist()
    ([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], [2, 1])
    """
    import awkward as ak

    columns, counts = [], None
    for index, value in enumerate(values):
        array = value if isinstance(value, ak.Array) else ak.Array(np.atleast_1d(np.asarray(value)))
        these = ak.to_numpy(ak.num(array, axis=1)) if array.ndim == 2 else None
        if array.ndim > 2 or (index and not same_rows(these, counts)):
            raise ValueError(f"feature {index} is {array.type}, but every feature needs the structure of the first")
        counts = these
        flat = ak.flatten(array, axis=1) if array.ndim == 2 else array
        columns.append(ak.to_numpy(flat, allow_missing=False))
    if len({len(column) for column in columns}) > 1:
        raise ValueError("the features have different numbers of values")
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.float32), counts


def same_rows(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two inputs have the same rows: both one per event (None), or equal counts.

    >>> same_rows(None, None), same_rows(np.array([2, 0]), np.array([2, 0])), same_rows(None, np.array([1]))
    (True, True, False)
    """
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def as_column(values: np.ndarray, counts: np.ndarray | None) -> Any:
    """One model output (a value per row) with the rows' event structure back.

    >>> as_column(np.array([0.5, 0.25, 0.75], dtype=np.float32), np.array([2, 0, 1])).tolist()
    [[0.5, 0.25], [], [0.75]]
    """
    import awkward as ak

    return ak.Array(values) if counts is None else ak.unflatten(values, counts)


def infer(model_session: Any, feeds: dict, outputs: list, rows: int, *, what: str = "model") -> list:
    """Run the session on ``feeds`` (input name -> matrix of ``rows`` rows); each output
    in ``outputs`` as one value per row (an output of shape (rows, 1) is flattened).

    >>> path = "configs/models/agc_assignment.onnx"
    >>> scores, = infer(session(path, sha256(read_model(path))), {"features": np.zeros((3, 10), np.float32)}, ["score"], 3)
    >>> scores.shape, scores.dtype
    ((3,), dtype('float32'))
    """
    try:
        results = model_session.run(list(outputs), feeds)
    except Exception as err:                    # onnxruntime's own exception types
        raise InputError(f"{what}: inference failed: {str(err).strip().splitlines()[0]}") from None
    columns = []
    for name, value in zip(outputs, results):
        value = np.asarray(value)
        if value.size != rows or (value.ndim > 1 and value.shape[0] != rows):
            raise InputError(f"{what}: output '{name}' has shape {value.shape} for {rows} rows; a column takes one "
                             "value per row")
        columns.append(value.reshape(rows))
    return columns


def model_path(folder: str | os.PathLike, name: str) -> Path:
    """The resolved model file ``name``, relative to ``folder`` (the folder of the config
    that names it), which it must stay inside; ValueError otherwise.

    >>> model_path("configs", "models/agc_assignment.onnx").name
    'agc_assignment.onnx'
    >>> model_path("configs", "../README.md")
    Traceback (most recent call last):
    ValueError: a model file must be inside the folder of the config that names it (configs/): ../README.md is not
    """
    root = Path(folder).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"a model file must be inside the folder of the config that names it ({folder}/): {name} is not")
    return path
