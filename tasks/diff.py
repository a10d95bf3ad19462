"""``heirloom diff``: what differs between two results.

    heirloom diff 3f9c0a1e 7b21d4c0                     two objects of the store, by key (a prefix will do)
    heirloom diff Fit --config a.yaml --config b.yaml   one task under two configs (run or not)

It prints the key components that differ (config excerpt, code, inputs, environment,
parameters), then, where both objects exist, the output files whose content differs and
the package versions and git states they were made with.
"""

from __future__ import annotations

import json
from pathlib import Path

from analysis.errors import HeirloomError
from analysis.store import integrity
from analysis.store import objects as store
from analysis.store.provenance import diff_components


def find_object(prefix: str, root: Path | None = None) -> store.Entry:
    """The object whose key starts with ``prefix`` (at least 6 hex digits), in any task
    family; a HeirloomError when none or several match.

    >>> find_object("zz")
    Traceback (most recent call last):
    analysis.errors.HeirloomError: 'zz' is not a key prefix (at least 6 hexadecimal digits)
    """
    root = root or store.store_root()
    if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
        raise HeirloomError(f"{prefix!r} is not a key prefix (at least 6 hexadecimal digits)")
    found = [folder for folder in (root / "objects").glob(f"*/{prefix[:2]}/{prefix}*") if folder.is_dir()]
    if not found:
        raise HeirloomError(f"no object with a key starting {prefix} in {root}")
    if len(found) > 1:
        raise HeirloomError(f"{len(found)} objects have keys starting {prefix}: give more digits")
    return store.entry(found[0].parent.parent.name, found[0].name, root)


def diff_records(old: dict, new: dict) -> list[str]:
    """What differs between two provenance records: key components, then outputs,
    versions and git state.

    >>> a = {"key": "a1", "components": {"config": {"cut": "pt > 30"}}, "outputs": {"h.json": "sha256:1"}}
    >>> b = {"key": "b2", "components": {"config": {"cut": "pt > 35"}}, "outputs": {"h.json": "sha256:2"}}
    >>> diff_records(a, b)
    ["key component config.cut: 'pt > 30' -> 'pt > 35'", 'output h.json: content differs']
    """
    lines = [f"key component {line}" for line in diff_components(old.get("components", {}),
                                                                   new.get("components", {}))]
    mine, theirs = old.get("outputs") or {}, new.get("outputs") or {}
    for name in sorted(set(mine) | set(theirs)):
        if name not in mine or name not in theirs:
            lines.append(f"output {name}: only in {'the second' if name in theirs else 'the first'}")
        elif mine[name] != theirs[name]:
            lines.append(f"output {name}: content differs")
    for part in ("versions", "git"):
        lines += [f"{part} {line}" for line in diff_components(old.get(part) or {}, new.get(part) or {})]
    return lines


def diff_keys(first: str, second: str) -> list[str]:
    """``heirloom diff KEY KEY``: two objects of the store."""
    records = []
    for prefix in (first, second):
        found = find_object(prefix)
        if integrity.incomplete(found) is not None:
            raise HeirloomError(f"{found.family} object {found.key[:12]} is not complete: {integrity.incomplete(found)}")
        records.append(found.provenance())
    head = f"{records[0]['task']} {records[0]['key'][:12]} -> {records[1]['task']} {records[1]['key'][:12]}"
    return [head] + (diff_records(*records) or ["no difference in key components, outputs, versions or git state"])


def diff_configs(task_name: str, configs: list[str], params: dict) -> list[str]:
    """``heirloom diff TASK --config A --config B``: one task under two configs."""
    import tasks

    if len(configs) != 2:
        raise HeirloomError("give two configs: heirloom diff TASK --config A --config B")
    if task_name not in tasks.__all__ or task_name == "All":
        raise HeirloomError(f"unknown task '{task_name}' (one of {', '.join(t for t in tasks.__all__ if t != 'All')})")
    pair = [getattr(tasks, task_name)(config=config, **params) for config in configs]
    keys = [task.key() for task in pair]
    lines = [f"{task_name}: {keys[0][:12]} ({configs[0]}) -> {keys[1][:12]} ({configs[1]})"]
    if keys[0] == keys[1]:
        return lines + ["the same key: both configs give the same result"]
    entries = [task.store_entry() for task in pair]
    if all(integrity.incomplete(e) is None for e in entries):
        return lines + diff_records(entries[0].provenance(), entries[1].provenance())
    components = [json.loads(json.dumps(task.components())) for task in pair]
    return lines + [f"key component {line}" for line in diff_components(*components)]
