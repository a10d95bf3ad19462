"""Each task's provenance: what made its object (or, for a task that has not run, what its
key would be made of): key, inputs, code identity, environment and versions, config excerpt,
where and when it ran, its outputs, and any field a task adds that this page does not know.

>>> from analysis.report.model import COMPLETE, TaskEntry
>>> record = {"key": "ab" * 20, "inputs": {"fit": {"task": "Fit", "key": "cd" * 20}},
...           "code": {"identity": "9c1f", "plugins": {}}, "outputs": {"a.png": "sha256:00"},
...           "output_sizes": {"a.png": 10}, "poi": {"name": "<mu>", "value": 1.0}}
>>> html = task_details(TaskEntry("Plot", "all", COMPLETE, "ab" * 20, provenance=record),
...                     "task-Plot-all", {("Fit", "cd" * 20): "task-Fit-all"})
>>> 'href="#task-Fit-all"' in html, "poi.name" in html, "&lt;mu&gt;" in html
(True, True, True)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

from analysis.report.content import plain_fields
from analysis.report.graph import status_badge
from analysis.report.html import Html, fields, join, number, table, tag
from analysis.report.model import TaskEntry

#: record fields this page shows in its own way; any other field is a task's extra
KNOWN = {"key", "task", "components", "inputs", "config_excerpt", "code", "git", "versions", "host", "platform",
         "argv", "started", "finished", "events_processed", "outputs", "output_sizes", "analysis", "config_file",
         "code_units", "executor", "batch"}


def task_details(task: TaskEntry, anchor: str, by_key: Mapping[tuple[str, str], str]) -> Html:
    """One task's section (``id=anchor``); ``by_key`` maps (family, key) to the anchors of the
    other tasks, so that inputs link to them."""
    record = task.provenance or {}
    components = task.components or record.get("components") or {}
    overview: list[tuple[str, object]] = [("status", status_badge(task)), ("key", task.key or "unknown")]
    overview += [(name, value) for name, value in (("problem", task.problem), ("note", task.note)) if value]
    overview += _run(record)
    parts = [tag("h3", task.title), fields(overview)]
    inputs = record.get("inputs") if record else components.get("inputs")
    if inputs:
        parts += [tag("h4", "inputs"), _inputs(inputs, by_key)]
    parts += [tag("h4", "code and environment"), fields(_code(record, components))]
    if record.get("outputs"):
        parts += [tag("h4", "outputs"), _outputs(record)]
    extras = {name: value for name, value in record.items() if name not in KNOWN}
    if extras:
        parts += [tag("h4", "recorded by the task"), fields(plain_fields(extras))]
    excerpt = record.get("config_excerpt", components.get("config"))
    if excerpt:
        parts.append(_collapsed("config excerpt (what the key holds of the config)", _json(excerpt)))
    if components.get("environment"):
        parts.append(_collapsed("environment in the key", _json(components["environment"])))
    return tag("section", join(parts), id=anchor, class_="task")


def _run(record: Mapping[str, Any]) -> list[tuple[str, object]]:
    """Where, when and how the object was made."""
    if not record:
        return []
    git = record.get("git") or {}
    executor = record.get("executor") or {}
    rows: list[tuple[str, object]] = [
        ("analysis", record.get("analysis", "")), ("config file", record.get("config_file", "")),
        ("started", record.get("started", "")), ("finished", record.get("finished", "")),
        ("took", _took(record)), ("host", record.get("host", "")), ("platform", record.get("platform", "")),
        ("git commit", f"{git.get('commit')} ({'uncommitted changes' if git.get('dirty') else 'clean'})"
         if git.get("commit") else "not a git checkout"),
        ("executor", ", ".join(str(v) if k == "name" else f"{k} {v}" for k, v in executor.items() if v is not None)
         if isinstance(executor, Mapping) else str(executor)),
        ("command", " ".join(str(a) for a in record.get("argv") or []))]
    if record.get("events_processed") is not None:
        rows.append(("events processed", number(record["events_processed"])))
    if record.get("batch"):
        rows.append(("batch job", ", ".join(f"{k} {v}" for k, v in dict(record["batch"]).items())))
    return rows


def _took(record: Mapping[str, Any]) -> str:
    """Seconds between ``started`` and ``finished``, or empty.

    >>> _took({"started": "2026-12-01T06:42:36.428+00:00", "finished": "2026-12-01T06:42:39.585+00:00"})
    '3.2 s'
    """
    try:
        seconds = (datetime.fromisoformat(record["finished"]) - datetime.fromisoformat(record["started"]))
    except (KeyError, TypeError, ValueError):
        return ""
    return f"{seconds.total_seconds():.1f} s"


def _inputs(inputs: Mapping[str, Any], by_key: Mapping[tuple[str, str], str]) -> Html:
    """Input tasks (linked to their sections) and raw files (path and content digest)."""
    rows = []
    for name, value in sorted(inputs.items()):
        if not isinstance(value, Mapping):
            rows.append([name, "", str(value)])
        elif "task" in value:
            anchor = by_key.get((str(value["task"]), str(value.get("key"))))
            title = f"{value['task']} {str(value.get('key'))[:12]}"
            rows.append([name, tag("a", title, href=f"#{anchor}") if anchor else title, "task output"])
        else:
            digest = ", ".join(f"{k} {v}" for k, v in value.items() if k not in ("file", "name"))
            rows.append([name, str(value.get("file", value.get("name", ""))), digest])
    return table(["input", "from", "identity"], rows, class_="data")


def _code(record: Mapping[str, Any], components: Mapping[str, Any]) -> list[tuple[str, object]]:
    code = record.get("code") or components.get("code") or {}
    plugins = code.get("plugins") or {}
    rows: list[tuple[str, object]] = [("code identity", code.get("identity", "")),
                                      ("plugins", ", ".join(f"{k} {v}" for k, v in plugins.items()) or "none")]
    if record.get("code_units"):
        rows.append(("code units", f"{len(record['code_units'])} (heirloom why names those that changed)"))
    if components.get("params"):
        rows.append(("parameters", ", ".join(f"{k}={v}" for k, v in components["params"].items())))
    versions = record.get("versions") or {}
    if versions:
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    return rows


def _outputs(record: Mapping[str, Any]) -> Html:
    sizes = record.get("output_sizes") or {}
    rows = [[name, number(sizes.get(name)), str(digest).removeprefix("sha256:")[:16]]
            for name, digest in sorted(record["outputs"].items())]
    return table(["file", "bytes", "sha256 (start)"], rows, class_="data")


def _json(value: object) -> Html:
    return tag("pre", json.dumps(value, indent=1, sort_keys=True, default=str, ensure_ascii=False))


def _collapsed(summary: str, body: Html) -> Html:
    return tag("details", join([tag("summary", summary), body]))
