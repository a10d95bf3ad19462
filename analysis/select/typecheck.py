"""Every expression of a config evaluated on type-only arrays, before any task runs.

Reading a config compiles its expressions (syntax, the whitelist, the operator-precedence
slip: :mod:`analysis.lang.precedence`) and :mod:`analysis.config.branches` checks their
names against the input files' branches. Neither sees types: ``Muon.tightId & Muon.pt >
30`` (a bitwise ``&`` of a float), a region cut that gives one value per jet instead of
one per event, an observable that is a whole collection, a plugin called with the wrong
arguments. Here every expression is evaluated as the skim and the selection evaluate it,
in their order and namespaces, on arrays that hold no event, only the types of the input
files' branches (:func:`analysis.io.schema.dataset_schema`): the skim's collections as it
groups them, and the NanoEvents (NanoAOD behaviours included) of a skim file written with
no entries. The first problem is a ConfigError naming the file, line and key, with a hint.

Arrays of no events rather than awkward's typetracer: they carry the same types, and the
plugins, correctionlib corrections and combinatorial bounds that convert to numpy run on
them as they do in the event loop (a typetracer cannot be converted). A value that cannot
be known without events (an ML model's output) leaves the expressions that read it unchecked.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from analysis.config.model import AnalysisConfig
from analysis.errors import ConfigError, ExpressionError
from analysis.lang import precedence
from analysis.store.user_cache import load_dict, save_dict


#: bumped when the checks change what they accept (cached passes of another format are redone)
CHECK_FORMAT = 1
#: the modules whose code decides what the check accepts (their text enters the cache key)
_CODE = ("select/typecheck.py", "select/selection.py", "lang/expr.py", "lang/sandbox.py", "lang/precedence.py",
         "io/columns.py", "io/skim.py", "lang/corrections.py")
_PACKAGE = Path(__file__).resolve().parent.parent


class _Unknown(Exception):
    """A value that only events decide (a model's output): what reads it is not checked."""


def check_types(cfg: AnalysisConfig, schemas: Mapping[str, Mapping[str, str]]) -> None:
    """Evaluate every expression of ``cfg`` on arrays of no events with each distinct
    schema of ``schemas`` (``{dataset: {branch: type}}``); raises a located ConfigError.

    >>> from analysis.io.demo_streams import BRANCH_TYPES
    >>> check_types(cfg, {"ttbar": BRANCH_TYPES})
    >>> check_types(cfg, {"ttbar": dict(BRANCH_TYPES, Muon_tightId="var * float32")})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    analysis.errors.ConfigError: ...agc_ttbar.yaml:...: key 'objects.muons.where': ... fails on the input files' types: ...
    """
    distinct = {json.dumps(dict(schema), sort_keys=True): schema for schema in schemas.values()}
    for schema in distinct.values():
        _Check(cfg, schema).run()


def check_types_once(cfg: AnalysisConfig, schemas: Mapping[str, Mapping[str, str]],
                     cache: Path | Sequence[Path]) -> bool:
    """:func:`check_types`, unless the same expressions, plugins, corrections, schemas, code
    and package versions passed before (a key in one of the JSON files ``cache``: the
    store's, and the user's, :mod:`analysis.store.user_cache`): a no-op rerun then costs a
    hash and never imports awkward. A pass is remembered in every one of them. Returns
    whether the check ran.

    >>> from analysis.io.demo_streams import BRANCH_TYPES
    >>> [check_types_once(cfg, {"ttbar": BRANCH_TYPES}, outdir / "checks.json") for _ in range(2)]
    [True, False]
    >>> check_types_once(cfg, {"ttbar": BRANCH_TYPES}, [outdir / "new-store.json", outdir / "checks.json"])
    False
    """
    key = fingerprint(cfg, schemas)
    files = [cache] if isinstance(cache, Path) else list(cache)
    passed = [load_dict(path) for path in files]
    ran = not any(key in found for found in passed)
    if ran:
        check_types(cfg, schemas)
    for path, found in zip(files, passed):
        if key not in found:
            _remember(path, found, key)
    return ran


def _remember(path: Path, passed: dict, key: str) -> None:
    """Add a passed check to a cache file (the newest 256 kept); a cache that cannot be
    written (a read-only home) only costs the check again."""
    passed[key] = time.time()
    save_dict(path, dict(sorted(passed.items(), key=lambda item: item[1])[-256:]), indent=0)


def fingerprint(cfg: AnalysisConfig, schemas: Mapping[str, Mapping[str, str]]) -> str:
    """The hash of everything a passed check depends on (not the rest of the config).

    >>> fingerprint(cfg, {"a": {"x": "float32"}}) == fingerprint(cfg, {"b": {"x": "float32"}})
    True
    """
    from analysis.lang import corrections
    from analysis.store.environment import environment

    record = {
        "format": CHECK_FORMAT, "environment": environment(),
        "code": {name: hashlib.sha256((_PACKAGE / name).read_bytes()).hexdigest() for name in _CODE},
        "expressions": {"/".join(map(str, path)): e.text for path, e in cfg._compiled.items()},
        "objects": cfg.data.get("objects", {}),
        "models": {name: spec.get("outputs") for name, spec in cfg.data.get("models", {}).items()},
        "plugins": {alias: plugin.sha256 for alias, plugin in cfg.plugins.items()},
        "corrections": {alias: corrections.fingerprint(path) for alias, path in cfg.correction_files().items()},
        "schemas": sorted({json.dumps(dict(schema), sort_keys=True) for schema in schemas.values()}),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def empty_branches(schema: Mapping[str, str]) -> dict:
    """``{branch: array of no events}`` of each branch's type.

    >>> str(empty_branches({"Jet_pt": "var * float32"})["Jet_pt"].type)
    '0 * var * float32'
    """
    import awkward as ak

    return {name: ak.Array(_form(text).length_zero_array()) for name, text in schema.items()}


@functools.lru_cache(maxsize=None)
def _form(text: str) -> Any:
    """The awkward Form of a type string: parsing one costs ~10 ms (awkward builds its
    parser each call), and a file's ~50 branches have a handful of distinct types."""
    import awkward as ak

    return ak.forms.from_type(ak.types.from_datashape(text, highlevel=False))


def empty_events(schema: Mapping[str, str]) -> Any:
    """The NanoEvents that Select would see for a skim of no events of this schema.

    >>> from analysis.io.demo_streams import BRANCH_TYPES
    >>> events = empty_events(BRANCH_TYPES)
    >>> len(events), type(events.Jet).__name__, events.Jet.pt.ndim
    (0, 'JetArray', 2)
    """
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from analysis.io.skim import SKIM_TREE, write_tree

    NanoAODSchema.warn_missing_crossrefs = False     # a skim keeps only what the config reads

    with tempfile.TemporaryDirectory(prefix="heirloom-types-") as folder:
        path = Path(folder) / "skim.root"
        write_tree(path, empty_branches(schema), SKIM_TREE)
        factory = NanoEventsFactory.from_root({str(path): SKIM_TREE}, schemaclass=NanoAODSchema, mode="eager")
        return factory.events()


class _Check:
    """One schema's pass over a config's expressions, in the order the tasks use them."""

    def __init__(self, cfg: AnalysisConfig, schema: Mapping[str, str]):
        from analysis.io.columns import needed_branches

        self.cfg = cfg           # the branches the skim keeps: what the skim and Select see
        self.schema = {name: schema[name] for name in needed_branches(cfg, list(schema))}

    def run(self) -> None:
        from analysis.io.columns import group_collections
        from analysis.select.selection import Namespace

        cfg = self.cfg
        raw = group_collections(empty_branches(self.schema))
        if ("skim", "preselection") in cfg._compiled:
            self.value(("skim", "preselection"), raw, _per_event_mask)
        if "event_weight" in cfg.data:
            self.value(("event_weight",), raw, _per_event_number)
        try:
            namespace = Namespace(empty_events(self.schema))
        except Exception:       # no NanoEvents of these branches: Select will say why, naming the file
            return
        for name, obj in cfg.data.get("objects", {}).items():
            self.define_object(namespace, name, obj)
        for name, spec in cfg.data.get("models", {}).items():
            for path in [p for p in cfg.expression_paths() if p[:2] == ("models", name)]:
                self.value(path, namespace, _numbers)
            for column in spec["outputs"].values():
                namespace.define_lazy(column, _unknown)
        for path in cfg.expression_paths():
            want = _WANTS.get(path[0])
            if want is not None:
                self.value(path, namespace, want(path, namespace) if path[0] == "systematics" else want)

    def define_object(self, namespace: Any, name: str, obj: Mapping) -> None:
        """Define an object as Select does: its collection, masked by ``where``."""
        collection = namespace[obj["from"]]
        if "where" not in obj:
            namespace.define(name, collection)
            return
        path = ("objects", name, "where")
        mask = self.value(path, namespace, _object_mask(collection, obj["from"]))
        if mask is None:
            namespace.define_lazy(name, _unknown)
            return
        try:
            namespace.define(name, collection[mask])
        except Exception as err:
            raise self.cfg.error(f"{obj['where']!r} cannot select {obj['from']} objects: {_first_line(err)}",
                                 *path) from None

    def value(self, path: tuple, namespace: Any, want: Callable[[Any], str | None]) -> Any:
        """The expression at ``path`` evaluated on ``namespace``; None when it reads an unknown."""
        expression = self.cfg.expression(*path)
        try:
            value = expression.evaluate(namespace)
        except ExpressionError as err:
            if isinstance(err.__cause__, _Unknown):
                return None
            raise self.failed(path, err) from None
        problem = want(value)
        if problem:
            raise self.cfg.error(f"{expression.text.strip()!r} {problem}", *path)
        return value

    def failed(self, path: tuple, err: ExpressionError) -> ConfigError:
        text = self.cfg.expression(*path).text
        hint = precedence.hint(text)
        cause = err.__cause__
        if cause is not None and err.reason == "evaluation error":
            what = type(cause).__name__ + (f": {_first_line(cause)}" if str(cause).strip() else "")
            message = f"{text.strip()!r} fails on the input files' types: {what}"
        else:                       # refused by the sandbox, a missing field ...: it says what
            message = f"{text.strip()!r}: {err.message}"
        return self.cfg.error(message + (f" (hint: {hint})" if hint else ""), *path)


def _unknown() -> Any:
    raise _Unknown()


def _first_line(err: BaseException) -> str:
    """The first line of an error's message (awkward's run to a dozen), at most 200 characters."""
    text = str(err).strip().splitlines()
    line = text[0].strip() if text else type(err).__name__
    return line if len(line) <= 200 else line[:197] + "..."


# ---- what each kind of expression must give ---------------------------------------------
def _layout(value: Any) -> tuple[int, str] | None:
    """(dimensions, kind) of a value: kind is "bool", "number", "record" or "other"; None
    for a Python scalar."""
    import awkward as ak
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return 0, "bool"
    if isinstance(value, (int, float, np.number)):
        return 0, "number"
    if isinstance(value, np.ndarray):
        return value.ndim, "bool" if value.dtype == bool else "number" if value.dtype.kind in "iuf" else "other"
    if isinstance(value, ak.Array):
        content = value.type.content
        depth = 1
        while isinstance(content, (ak.types.ListType, ak.types.RegularType, ak.types.OptionType)):
            depth += not isinstance(content, ak.types.OptionType)
            content = content.content
        if isinstance(content, ak.types.RecordType):
            return depth, "record"
        if isinstance(content, ak.types.NumpyType):
            return depth, "bool" if content.primitive == "bool" else "number"
        return depth, "other"
    return None


def _per_event_mask(value: Any) -> str | None:
    found = _layout(value)
    if found is None:
        return f"gives a {type(value).__name__}, not True/False per event"
    depth, kind = found
    if depth > 1:
        return ("gives one value per object, not one per event (hint: reduce it per event, e.g. "
                "ak.any(...), ak.all(...) or ak.num(...) >= N)")
    if kind in ("number", "record"):
        return f"gives {kind}s, not True/False per event (hint: compare it, e.g. ... > 0)"
    return None


def _per_event_number(value: Any) -> str | None:
    found = _layout(value)
    if found is None or found[1] == "record":
        return "gives no number per event (a weight must be one)"
    if found[0] > 1:
        return "gives one value per object, not one per event (hint: reduce it, e.g. ak.prod(..., axis=1))"
    return None


def _numbers(value: Any) -> str | None:
    found = _layout(value)
    if found is not None and found[1] == "record":
        return "gives records (a collection), not numbers (hint: take a field, e.g. jets.pt)"
    return None


def _observable(value: Any) -> str | None:
    found = _layout(value)
    if found is not None and found[0] > 2:
        return "gives lists of lists per event; an observable is one number per event or per object"
    return _numbers(value)


def _object_mask(collection: Any, source: str) -> Callable[[Any], str | None]:
    wanted = (_layout(collection) or (0, ""))[0]

    def check(value: Any) -> str | None:
        found = _layout(value)
        if found is None or found[1] in ("number", "record"):
            return f"gives {'no array' if found is None else found[1] + 's'}, not True/False per {source} object"
        if found[0] != wanted and wanted > 1:
            return (f"gives one value per event, not one per {source} object (hint: compare a field of it, "
                    f"e.g. {source}.pt > 30)")
        return None
    return check


def _shape(path: tuple, namespace: Any) -> Callable[[Any], str | None]:
    """A shape systematic's override must have the type of the field it replaces; a weight one is a weight."""
    if len(path) < 4:
        return _per_event_number
    collection, _, field = str(path[3]).partition(".")
    try:
        target = _layout(namespace[collection][field])
    except Exception:
        return _numbers

    def check(value: Any) -> str | None:
        found = _layout(value)
        if found is not None and target is not None and found[0] not in (0, target[0]):
            return f"gives {found[0]}-dimensional values, but {path[3]} is {target[0]}-dimensional"
        return _numbers(value)
    return check


_WANTS: dict[str, Any] = {"event_weight": _per_event_number, "selection": _per_event_mask, "regions": _per_event_mask, "observables": _observable,
                          "systematics": _shape}
