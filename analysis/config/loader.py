"""Read YAML analysis configs with line numbers and resolve ``extends:`` by deep merge.

Every value keeps the (file, line) where it was written, so later checks (schema,
expressions) can point a physicist at the exact line of the file that is wrong, even
when the value came from a parent config through ``extends:``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from analysis.config.errors import ConfigError

KeyPath = tuple  # e.g. ("selection", 0, "cut")
Locations = dict  # KeyPath -> (file, line)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent override is a classic config bug)."""

    heirloom_file: str | None = None    # the file being read, for error messages


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key '{key}' (first written on line {seen[key]})",
                              file=getattr(loader, "heirloom_file", None),
                              line=key_node.start_mark.line + 1, key=str(key))
        seen[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _record_lines(node: yaml.Node, path: KeyPath, file: str, out: Locations) -> None:
    out[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = (file, key_node.start_mark.line + 1)
            _record_lines(value_node, path + (key,), file, out)
            out[path + (key,)] = (file, key_node.start_mark.line + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, path + (index,), file, out)


def read_yaml(path: str | os.PathLike) -> tuple[dict, Locations]:
    """Parse one YAML file into (data, locations) without following ``extends:``.

    >>> data, where = read_yaml("configs/demo.yaml")
    >>> data["extends"], where[("datasets", "ttbar__scaleup")]
    ('agc_ttbar.yaml', ('configs/demo.yaml', 15))
    """
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", file=file) from None
    loader = _LineLoader(text)
    loader.heirloom_file = file
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"malformed YAML: {err.problem or err}", file=file, line=line) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError("the top level of a config must be a mapping", file=file, line=1)
    locations: Locations = {}
    if node is not None:
        _record_lines(node, (), file, locations)
    return data, locations


def deep_merge(base: Any, override: Any, base_where: Locations, over_where: Locations,
               path: KeyPath = ()) -> tuple[Any, Locations]:
    """Merge ``override`` into ``base``: mappings merge key by key, anything else is replaced.

    A key set to ``null`` in the override removes it from the result (so a fork can drop a
    dataset or a systematic).

    >>> deep_merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {}, {})[0]
    {'a': {'x': 1, 'y': 3}}
    """
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        where = {p: loc for p, loc in base_where.items() if p[:len(path)] == path}
        for key, value in override.items():
            sub = path + (key,)
            if value is None and key in merged:
                del merged[key]
                where = {p: loc for p, loc in where.items() if p[:len(sub)] != sub}
                continue
            if key in merged:
                merged[key], sub_where = deep_merge(merged[key], value, where, over_where, sub)
                where = {p: loc for p, loc in where.items() if p[:len(sub)] != sub}
                where.update(sub_where)
            else:
                merged[key] = value
                where.update({p: loc for p, loc in over_where.items() if p[:len(sub)] == sub})
        if path in over_where:
            where[path] = over_where[path]
        return merged, where
    return override, {p: loc for p, loc in over_where.items() if p[:len(path)] == path}


def load_with_extends(path: str | os.PathLike, _chain: tuple = ()) -> tuple[dict, Locations, list[str]]:
    """Read a config and, recursively, the configs it ``extends:``.

    Returns the merged data, the location of every key, and the list of files read
    (parents first). ``extends:`` paths are relative to the file that names them.
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved in _chain:
        raise ConfigError("circular 'extends:' chain: " + " -> ".join(str(p) for p in _chain + (resolved,)),
                          file=str(path), key="extends")
    data, where = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data, where, [str(path)]
    if not isinstance(parent, str):
        file, line = where.get(("extends",), (str(path), None))
        raise ConfigError("'extends' must be a path to another config", file=file, line=line, key="extends")
    parent_path = path.parent / parent
    if not parent_path.exists():
        file, line = where.get(("extends",), (str(path), None))
        raise ConfigError(f"extended config '{parent}' not found (looked for {parent_path})",
                          file=file, line=line, key="extends")
    base, base_where, files = load_with_extends(parent_path, _chain + (resolved,))
    where.pop(("extends",), None)
    merged, merged_where = deep_merge(base, data, base_where, where)
    return merged, merged_where, files + [str(path)]
