"""The Select output table: selected events per variation and region, as Parquet."""

from __future__ import annotations

from pathlib import Path

from analysis.names import split_group_key
from analysis.select.selection import SelectionPlan


def write_selected(chunks: dict, plan: SelectionPlan, path: Path) -> int:
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
    groups = sorted({group for chunk in chunks.values() for group in chunk})
    variations = sorted({split_group_key(g)[0] for g in groups})
    regions = sorted({split_group_key(g)[1] for g in groups})
    pieces: dict = {name: [] for name in ["variation", "region", *obs_columns, *weight_columns]}
    for chunk in sorted(chunks):
        for group, columns in sorted(chunks[chunk].items()):
            variation, region = split_group_key(group)
            n = len(columns["w_nominal"])
            if n == 0:
                continue
            pieces["variation"].append(np.full(n, variations.index(variation), dtype=np.int32))
            pieces["region"].append(np.full(n, regions.index(region), dtype=np.int32))
            for name in obs_columns + weight_columns:
                pieces[name].append(np.asarray(columns[name], dtype=np.float64) if name in columns
                                    else np.full(n, np.nan))

    def joined(parts, dtype):
        return np.concatenate(parts) if parts else np.array([], dtype=dtype)

    arrays = {
        "variation": pa.DictionaryArray.from_arrays(joined(pieces.pop("variation"), np.int32), variations),
        "region": pa.DictionaryArray.from_arrays(joined(pieces.pop("region"), np.int32), regions),
    }
    arrays.update({name: pa.array(joined(parts, np.float64)) for name, parts in pieces.items()})
    table = pa.table(arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    # dictionary-encode only the two label columns: trying it on float columns costs time
    pq.write_table(table, tmp, use_dictionary=["variation", "region"], compression="lz4")
    tmp.rename(path)
    return table.num_rows
