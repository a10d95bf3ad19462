"""The Select output table: selected events per variation and region, as Parquet."""

from __future__ import annotations

from pathlib import Path


def write_selected(chunks: dict, plan, path: Path) -> int:
    """Concatenate chunk outputs (ordered by file and entry) into one Parquet table.

    Columns: ``variation`` and ``region`` (dictionary-encoded strings), ``obs_<name>``
    (NaN where the region does not use that observable), ``w_<weight>`` (NaN on rows of
    shape variations, where only the nominal weight applies). Returns the row count.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    obs_columns = [f"obs_{name}" for name in plan.observable_names]
    weight_columns = [f"w_{name}" for name in plan.weight_names]
    pieces: dict = {name: [] for name in ["variation", "region", *obs_columns, *weight_columns]}
    for chunk in sorted(chunks):
        for group, columns in sorted(chunks[chunk].items()):
            variation, region = group.split("|", 1)
            n = len(columns["w_nominal"])
            if n == 0:
                continue
            pieces["variation"].append(np.full(n, variation, dtype=object))
            pieces["region"].append(np.full(n, region, dtype=object))
            for name in obs_columns + weight_columns:
                pieces[name].append(np.asarray(columns[name], dtype=np.float64) if name in columns
                                    else np.full(n, np.nan))
    arrays = {}
    for name, parts in pieces.items():
        if name in ("variation", "region"):
            values = np.concatenate(parts) if parts else np.array([], dtype=object)
            arrays[name] = pa.array(values, type=pa.string()).dictionary_encode()
        else:
            arrays[name] = pa.array(np.concatenate(parts) if parts else np.array([], dtype=np.float64))
    table = pa.table(arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.rename(path)
    return table.num_rows
