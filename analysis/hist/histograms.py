"""Fill, scale, merge and serialize histograms (hist + uhi.io JSON; never pickles).

A dataset's histograms are ``{region: Hist}`` with a ``variation`` category axis and the
region's observable axis (named after the observable). On disk they are one
``histograms.json`` in the community ``uhi.io.json`` format, readable by any
UHI-compatible tool: ``hist.Hist(json.load(f, object_hook=uhi.io.json.object_hook)[name])``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from analysis.names import NOMINAL, histogram_key, region_histogram_key, split_histogram_key



#: histogram cells one dataset may book (bins + flow, x regions x observables x variations)
MAX_CELLS = 20_000_000


def check_size(cfg: Any) -> None:
    """Refuse a config whose histograms would not fit in memory: every region books each
    of its observables for the nominal and (roughly) two variations per systematic.

    >>> check_size(load_config("configs/agc_ttbar.yaml"))   # about 20,000 cells: fine
    """
    from analysis.config.model import region_observables

    variations = 1 + 2 * len(cfg.systematics)
    cells = 0
    for name, region in cfg.regions.items():
        for observable in region_observables(region):
            cells += (cfg.observables.get(observable, {}).get("bins", 0) + 2) * variations
        if cells > MAX_CELLS:
            raise cfg.error(f"the histograms would have about {cells:,} cells per dataset by this region "
                            f"({variations} variations); the limit is {MAX_CELLS:,}: use fewer bins, "
                            "observables or regions", "regions", name)


def mc_scale(kind: str, xsec: float | None, lumi: float, cutflow: dict, event_weighted: bool) -> float:
    """The factor that normalises a dataset's histograms: ``xsec * lumi / N`` for MC, where N
    is the number of generated events (their sum of event weights when the config weights
    events, e.g. by genWeight); 1 for data.

    >>> mc_scale("mc", 729.84, 30.0, {"events": {"all": 200000}, "weighted": {"all": 2.0e5}}, False)
    0.109476
    >>> mc_scale("data", None, 30.0, {"events": {"all": 10}}, False)
    1.0
    """
    if kind != "mc":
        return 1.0
    if xsec is None:
        raise ValueError("an MC dataset needs its cross-section (xsec)")
    denominator = cutflow["weighted"]["all"] if event_weighted else cutflow["events"]["all"]
    return float(xsec) * lumi / denominator if denominator else 0.0


def empty_histogram(observable: str, spec: dict) -> Any:
    """A Weight-storage Hist with a growing ``variation`` axis and the observable axis.

    >>> h = empty_histogram("ht", {"bins": 25, "range": [50, 550], "label": "H_T [GeV]"})
    >>> h.axes.name
    ('variation', 'ht')
    """
    import hist

    low, high = spec["range"]
    return hist.Hist(
        hist.axis.StrCategory([NOMINAL], name="variation", label="variation", growth=True),
        hist.axis.Regular(spec["bins"], low, high, name=observable, label=spec.get("label", observable)),
        storage=hist.storage.Weight(),
    )


def fill_from_table(table: Any, regions: dict, observables: dict, scale: float = 1.0) -> dict:
    """Fill ``{region/observable: Hist}`` from a Select table (a pyarrow Table).

    The table has one row per selected event and variation: columns ``variation``,
    ``region``, ``obs_<name>`` and ``w_<weight variation>``. Shape variations fill their
    own name with the nominal weight; weight variations fill ``w_<name>`` of nominal rows.
    """
    import numpy as np

    out = {}
    variation_codes, variation_names = _codes(table, "variation")
    region_codes, region_names = _codes(table, "region")
    nominal_weight = table.column("w_nominal").to_numpy()
    weight_columns = [c for c in table.column_names if c.startswith("w_") and c != "w_nominal"]
    ordered = ([NOMINAL] if NOMINAL in variation_names else []) + sorted(v for v in variation_names if v != NOMINAL)
    for region, observable_names in regions.items():
        in_region = region_codes == (region_names.index(region) if region in region_names else -1)
        for obs in observable_names:
            h = empty_histogram(obs, observables[obs])
            values = table.column(f"obs_{obs}").to_numpy()
            defined = ~np.isnan(values)       # an observable may be undefined (None) for an event
            for variation in ordered:
                rows = in_region & defined & (variation_codes == variation_names.index(variation))
                if not rows.any():
                    continue
                h.fill(variation=variation, **{obs: values[rows]}, weight=nominal_weight[rows] * scale)
                if variation != NOMINAL:
                    continue
                for column in weight_columns:
                    w = table.column(column).to_numpy()[rows] * scale
                    if not np.all(np.isnan(w)):
                        h.fill(variation=column[2:], **{obs: values[rows]}, weight=w)
            out[region_histogram_key(region, obs)] = h
    return out


def _codes(table, name: str):
    """Integer codes and labels of a (dictionary-encoded) string column."""
    import numpy as np
    import pyarrow as pa

    column = table.column(name).combine_chunks() if table.num_rows else None
    if column is None:
        return np.zeros(0, dtype=np.int32), []
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    return column.indices.to_numpy(zero_copy_only=False), column.dictionary.to_pylist()


def dump(histograms: dict, path: Path) -> None:
    """Write ``{name: Hist}`` (names may be nested as ``dataset/region/observable``) atomically."""
    import uhi.io.json

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(histograms, default=uhi.io.json.default, sort_keys=True))
    os.replace(tmp, path)


def load(path: Path) -> dict:
    """Read a file written by :func:`dump` back into ``{name: hist.Hist}``."""
    import hist
    import uhi.io.json

    raw = json.loads(Path(path).read_text(), object_hook=uhi.io.json.object_hook)
    return {name: hist.Hist(value) for name, value in raw.items()}


def nominal_only(h: Any) -> Any:
    """A copy of ``h`` that keeps only the ``nominal`` variation."""
    import hist

    out = hist.Hist(hist.axis.StrCategory([NOMINAL], name="variation", label="variation", growth=True),
                    h.axes[1], storage=hist.storage.Weight())
    out.view(flow=True)[0] = h[{"variation": NOMINAL}].view(flow=True)
    return out


def pseudodata(merged: dict, name: str, combine: dict) -> dict:
    """Pseudo-data ``name`` = sum of factor x nominal of other datasets, per histogram.

    >>> out = pseudodata(merged, "pseudodata", {"ttbar": 1.0, "wjets": 0.5})
    >>> sorted(out), list(out["pseudodata/4j1b/ht"].axes["variation"])
    (['pseudodata/4j1b/ht', 'pseudodata/4j2b/m_bjj'], ['nominal'])
    >>> tt, w = (merged[f"{dataset}/4j1b/ht"]["nominal", :].values() for dataset in ("ttbar", "wjets"))
    >>> bool((out["pseudodata/4j1b/ht"]["nominal", :].values() == tt + 0.5 * w).all())
    True
    """
    out = {}
    first = next(iter(combine))
    for key in merged:
        source, region, observable = split_histogram_key(key)
        if source != first:
            continue
        total = None
        for dataset, factor in combine.items():
            part = nominal_only(merged[histogram_key(dataset, region, observable)]) * float(factor)
            total = part if total is None else total + part
        out[histogram_key(name, region, observable)] = total
    return out
