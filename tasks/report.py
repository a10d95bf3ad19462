"""``heirloom report``: a static HTML report of an analysis (docs/report.md).

    heirloom report --config configs/agc_ttbar.yaml [--out DIR]

It walks the DAG of the config's final tasks (:func:`tasks.maintenance.final_tasks`, the
tasks ``heirloom gc`` keeps), so a task family added there appears without a change here.
For each task it finds the object at the task's key and its status:

* ``complete``: the object is complete (:func:`analysis.store.integrity.incomplete`) and
  every file the report shows has the sha256 its provenance records;
* ``damaged``: an object folder is there but is not complete, or a shown file differs;
* ``not run``: no object at the key (the key it would have is shown, with what makes it).

The files a report shows (plots, tables, small JSON results: :func:`analysis.report.model.shown`)
are read from the object; with a remote store, the object is fetched into the local cache
first (``task.read_entry()``) unless it holds more than :data:`REMOTE_DATA_LIMIT` of other
files (data) or more than :data:`REMOTE_FETCH_LIMIT` in all. The page
itself is written by :mod:`analysis.report` from plain data.

>>> default_folder("demo").relative_to(store.store_root()).as_posix()
'reports/demo'
"""

from __future__ import annotations

from pathlib import Path

from analysis.errors import HeirloomError, StoreError
from analysis.load import load_config
from analysis.report.model import COMPLETE, DAMAGED, NOT_RUN, Report, TaskEntry, shown
from analysis.report.page import write_report
from analysis.store import integrity
from analysis.store import objects as store
from analysis.store.provenance import now
from analysis.store.remote import remote_store

#: a remote object is downloaded for a report only for what it shows: not when it holds
#: more than this of other files (data: skims, selected events), nor when it is larger
#: than REMOTE_FETCH_LIMIT in all; then its provenance is shown, its files are not
REMOTE_DATA_LIMIT = 20_000_000
REMOTE_FETCH_LIMIT = 200_000_000


def default_folder(analysis: str) -> Path:
    """``<store>/reports/<analysis>/`` (for a remote store: in its local cache folder)."""
    root = store.store_root()
    folder = root / "reports" / store.safe_component(analysis, "analysis name")
    if (root / "reports").exists():
        store.inside(root, root / "reports")           # a planted link must not lead the report out
    return folder


def dag_tasks(config: str) -> list:
    """Every task of the config's DAG once, dependencies before dependents."""
    from tasks.branches import tree
    from tasks.maintenance import final_tasks

    return tree(final_tasks(config))


def family_order(tasks: list) -> tuple[str, ...]:
    """The task families in the order of the exported workflows' stages."""
    from tasks.export.dag import Node, stages

    nodes = [Node(t.task_family, t.label(), (), tuple((c.task_family, c.label()) for c in t.input_tasks().values()))
             for t in tasks]
    try:
        return tuple(stage.family for stage in stages(nodes))
    except ValueError:
        return ()


def gather(config: str) -> Report:
    """The report's data: the DAG's tasks with their status, provenance and files."""
    cfg = load_config(config)
    tasks = dag_tasks(config)
    shared = remote_store()
    notes = (f"Remote store {shared.url}: objects were read through the local cache {store.store_root()}.",) \
        if shared is not None else ()
    return Report(analysis=cfg.name, config=str(config), store=store.store_url() or str(store.store_root()),
                  created=now(), tasks=tuple(task_entry(task) for task in tasks), families=family_order(tasks),
                  notes=notes, description=str(cfg.data.get("description") or ""))


def task_entry(task) -> TaskEntry:
    """One task's status, provenance and shown files."""
    requires = tuple((c.task_family, c.label()) for c in task.input_tasks().values())
    base = {"family": task.task_family, "label": task.label(), "requires": requires}
    try:
        key, components = task.key(), task.components()
    except HeirloomError as err:
        return TaskEntry(**base, status=NOT_RUN, problem=f"its key cannot be computed yet: {err}")
    found = task.store_entry()
    problem = integrity.incomplete(found)
    if problem is None:
        return _checked(base, found, components)
    if found.path.exists():
        return TaskEntry(**base, status=DAMAGED, key=key, problem=problem, provenance=_record(found),
                         components=components)
    shared = remote_store()
    if shared is not None and shared.complete(task.task_family, key):
        return _remote(task, shared, base, components)
    return TaskEntry(**base, status=NOT_RUN, key=key, components=components)


def _checked(base: dict, found: store.Entry, components: dict) -> TaskEntry:
    """A complete object: complete in the report when the files it shows are intact."""
    record = _record(found) or {}
    sizes = record.get("output_sizes") or {}
    names = tuple(name for name in sorted(record.get("outputs") or {}) if shown(name, sizes.get(name)))
    problems = [f"{name}: content differs from its recorded sha256" for name in names
                if integrity.file_sha256(integrity.check_name(found.path, name)) != str(record["outputs"][name]).removeprefix(
                    "sha256:")]
    if problems:
        return TaskEntry(**base, status=DAMAGED, key=found.key, problem="; ".join(problems), provenance=record,
                         components=components)
    return TaskEntry(**base, status=COMPLETE, key=found.key, provenance=record, components=components,
                     folder=found.path, files=names)


def _remote(task, shared, base: dict, components: dict) -> TaskEntry:
    """An object committed to the remote store: fetched when it has files to show and is
    not too large, else only its provenance record is read."""
    record = shared.backend.read_record(task.task_family, task.key()) or {}
    sizes = record.get("output_sizes") or {}
    wanted = [name for name in record.get("outputs") or {} if shown(name, sizes.get(name))]
    total = sum(size for size in sizes.values() if isinstance(size, int))
    data = total - sum(size for name, size in sizes.items() if name in wanted and isinstance(size, int))
    if wanted and data <= REMOTE_DATA_LIMIT and total <= REMOTE_FETCH_LIMIT:
        try:
            return _checked(base, task.read_entry(), components)
        except StoreError as err:
            return TaskEntry(**base, status=DAMAGED, key=task.key(), problem=str(err), provenance=record,
                             components=components)
    note = f"in {shared.url}; its files ({total / 1e6:.0f} MB) were not downloaded for the report" if wanted else None
    return TaskEntry(**base, status=COMPLETE, key=task.key(), provenance=record, components=components, note=note)


def _record(found: store.Entry) -> dict | None:
    try:
        record = found.provenance()
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def report(config: str, out: str | None = None) -> tuple[Path, Report]:
    """Write the report of ``config`` into ``out`` (default :func:`default_folder`); return
    the path of its ``index.html`` and what it shows."""
    data = gather(config)
    folder = Path(out) if out else default_folder(data.analysis)
    return write_report(data, folder), data


def summary(data: Report) -> str:
    """One line: what the report holds.

    >>> summary(Report("demo", "c.yaml", "store", "now", (TaskEntry("Fit", "all", NOT_RUN),)))
    'report of demo: 1 tasks (0 complete, 1 not run, 0 damaged), 0 files shown'
    """
    counts = data.counts()
    files = sum(len(task.files) for task in data.tasks)
    return (f"report of {data.analysis}: {len(data.tasks)} tasks ("
            + ", ".join(f"{n} {status}" for status, n in counts.items()) + f"), {files} files shown")
