"""Histogram filling on a device: ``histogram: {device: cuda}`` fills with cupy on a GPU.

The result is the same ``{region/observable: Hist}`` that :func:`analysis.hist.histograms.fill_from_table`
makes, bit for bit, so the device is result-neutral and never enters a content key.

How the GPU gives boost-histogram's numbers exactly. boost-histogram adds one weight after
the other, in row order, to each bin (``value += w; variance += w * w``). Floating-point
addition is not associative, so a GPU reduction with atomic adds (unordered) or a tree
reduction would differ in the last bits. Here:

1. the bin index of every row is computed as boost's regular axis does it,
   ``z = (x - low) / (high - low)``, ``index = int(z * bins)`` (underflow below 0, overflow
   from 1), with IEEE round-to-nearest intrinsics (``__dsub_rn``, ``__ddiv_rn``,
   ``__dmul_rn``) so the compiler cannot fuse operations;
2. the fills of a histogram (nominal, then each weight variation, then the shape
   variations, in :func:`fill_from_table`'s order) become one array of cells
   (category x bin, flow bins included) and one of weights, concatenated in fill order;
3. the rows are sorted by ``cell * n + position`` (unique keys: the order is fixed whatever
   the sort algorithm), which groups each cell's rows and keeps their row order;
4. one GPU thread per cell adds its rows' weights and squared weights sequentially, in
   that order, with ``__dadd_rn``/``__dmul_rn`` (no fused multiply-add).

That is a deterministic segmented reduction: every cell's sum is the sequential sum that
boost-histogram computes, so the GPU check (``benchmarks/gpu_check.py``) asserts exact
equality. The parallelism is over cells, not rows: the sums are cheap next to the index
computation, the masks and the sort, which run over all rows in parallel.

Without cupy or a usable CUDA device the same steps run with numpy (``np.bincount`` adds
its weights in row order too), after one log line that says so.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from analysis.hist.histograms import _codes, empty_histogram
from analysis.names import NOMINAL, region_histogram_key

DEVICES = ("cpu", "cuda")
log = logging.getLogger("heirloom.hist")

_SUMS_SOURCE = r"""
extern "C" __global__ void heirloom_cell_sums(const double* w, const long long* starts, const long long* ends,
                                              double* value, double* variance, const long long ncells) {
    long long cell = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (cell >= ncells) return;
    double s = 0.0, q = 0.0;
    for (long long i = starts[cell]; i < ends[cell]; ++i) {
        double x = w[i];
        s = __dadd_rn(s, x);
        q = __dadd_rn(q, __dmul_rn(x, x));
    }
    value[cell] = s;
    variance[cell] = q;
}
"""
_INDEX_BODY = """
double z = __ddiv_rn(__dsub_rn(x, low), delta);
cell = z < 1.0 ? (z >= 0.0 ? (long long)__dmul_rn(z, (double)bins) + 1 : 0) : bins + 1;
"""


@dataclass(frozen=True)
class Backend:
    """The array library that fills: ``cupy`` on a CUDA device or ``numpy``; ``fallback``
    says why a requested ``cuda`` runs with numpy (``None`` when it does not).

    >>> import numpy
    >>> Backend("numpy", numpy).fallback is None
    True
    """

    name: str
    xp: Any
    fallback: str | None = None


def configured_device(cfg: Any) -> str:
    """The ``histogram.device`` of a config: ``cpu`` (default) or ``cuda``.

    >>> configured_device(cfg)
    'cpu'
    """
    return str(cfg.section("histogram", "device", default="cpu"))


@functools.lru_cache(maxsize=None)
def backend(device: str) -> Backend:
    """numpy for ``cpu``; for ``cuda`` cupy when it imports and sees a device, else numpy
    and one log line (once per process) that says why.

    >>> backend("cpu").name
    'numpy'
    """
    import numpy

    if device not in DEVICES:
        raise ValueError(f"unknown device '{device}' (choose from {', '.join(DEVICES)})")
    if device == "cpu":
        return Backend("numpy", numpy)
    try:
        import cupy

        count = int(cupy.cuda.runtime.getDeviceCount())
        reason = None if count > 0 else "no CUDA device is visible"
        if count > 0:
            cupy.asnumpy(cupy.arange(2) + 1)   # the runtime and the kernel compiler (NVRTC) work
    except ImportError:
        reason = "cupy is not installed (pip install -r requirements-gpu.in)"
    except Exception as err:                    # a driver or runtime problem: say it, run on
        reason = f"no usable CUDA device ({type(err).__name__}: {err})"
    if reason is None:
        return Backend("cupy", cupy)
    log.warning("heirloom: histogram device cuda: %s; filling with numpy instead (same histograms)", reason)
    return Backend("numpy", numpy, reason)


def fill_on_device(table: Any, regions: dict, observables: dict, scale: float = 1.0,
                   device: str = "cpu") -> tuple[dict, dict]:
    """Fill ``{region/observable: Hist}`` as :func:`fill_from_table` does, on ``device``;
    returns the histograms and what filled them (``device``, ``backend``, ``fallback``).

    >>> import pyarrow as pa
    >>> from analysis.hist.histograms import fill_from_table
    >>> table = pa.table({"variation": pa.array(["nominal", "nominal", "jes_up"]).dictionary_encode(),
    ...                   "region": pa.array(["SR", "SR", "SR"]).dictionary_encode(),
    ...                   "obs_ht": [120.0, 480.0, 130.0], "w_nominal": [1.0, 0.5, 1.0],
    ...                   "w_btag_up": [1.1, 0.6, float("nan")]})
    >>> spec = {"ht": {"bins": 5, "range": [0, 500]}}
    >>> hists, info = fill_on_device(table, {"SR": ["ht"]}, spec, 0.1)
    >>> info, list(hists["SR/ht"].axes["variation"])
    ({'device': 'cpu', 'backend': 'numpy', 'fallback': None}, ['nominal', 'btag_up', 'jes_up'])
    >>> hists == fill_from_table(table, {"SR": ["ht"]}, spec, 0.1)
    True
    """
    chosen = backend(device)
    columns = _Columns(table, chosen.xp)
    out = {}
    for region, observable_names in regions.items():
        region_code = columns.region_names.index(region) if region in columns.region_names else -1
        for obs in observable_names:
            out[region_histogram_key(region, obs)] = _histogram(columns, region_code, obs, observables[obs],
                                                                scale, chosen)
    return out, {"device": device, "backend": chosen.name, "fallback": chosen.fallback}


def fill_parquet(path: str, regions: dict, observables: dict, scale: float = 1.0,
                 device: str = "cpu") -> tuple[dict, dict]:
    """:func:`fill_on_device` on a Select table read from ``path`` (what a Dask worker runs).

    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> pq.write_table(pa.table({"variation": pa.array(["nominal"]).dictionary_encode(),
    ...     "region": pa.array(["SR"]).dictionary_encode(), "obs_x": [1.5], "w_nominal": [2.0]}), outdir / "t.parquet")
    >>> hists, info = fill_parquet(str(outdir / "t.parquet"), {"SR": ["x"]}, {"x": {"bins": 2, "range": [0, 2]}})
    >>> hists["SR/x"].values().tolist(), info["rows"]
    ([[0.0, 2.0]], 1)
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    hists, info = fill_on_device(table, regions, observables, scale, device)
    return hists, {**info, "rows": table.num_rows}


class _Columns:
    """A Select table's columns on the backend's device, each moved there once."""

    def __init__(self, table: Any, xp: Any):
        self.table, self.xp = table, xp
        variation_codes, self.variation_names = _codes(table, "variation")
        region_codes, self.region_names = _codes(table, "region")
        self.variation, self.region = xp.asarray(variation_codes), xp.asarray(region_codes)
        self.weight_columns = [c for c in table.column_names if c.startswith("w_") and c != "w_nominal"]
        others = sorted(v for v in self.variation_names if v != NOMINAL)
        self.ordered = ([NOMINAL] if NOMINAL in self.variation_names else []) + others
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name not in self._cache:
            self._cache[name] = self.xp.asarray(self.table.column(name).to_numpy())
        return self._cache[name]

    def fills(self, base: Any, scale: float) -> Any:
        """``(variation, rows, weights)`` in the order :func:`fill_from_table` fills them."""
        xp = self.xp
        for variation in self.ordered:
            rows = base & (self.variation == self.variation_names.index(variation))
            if not bool(rows.any()):
                continue
            yield variation, rows, self.get("w_nominal")[rows] * scale
            if variation != NOMINAL:
                continue
            for column in self.weight_columns:
                w = self.get(column)[rows] * scale
                if not bool(xp.all(xp.isnan(w))):
                    yield column[2:], rows, w


def _histogram(columns: _Columns, region_code: int, obs: str, spec: dict, scale: float, chosen: Backend) -> Any:
    """One region's histogram of ``obs``: every fill's cells, summed in fill order."""
    import hist

    xp = columns.xp
    values = columns.get(f"obs_{obs}")
    bins = int(spec["bins"])
    low, high = (float(v) for v in spec["range"])
    index = flow_index(xp, values, bins, low, high)
    base = (columns.region == region_code) & ~xp.isnan(values)
    categories, cells, weights = [NOMINAL], [], []
    for label, rows, w in columns.fills(base, scale):
        if label not in categories:
            categories.append(label)
        cells.append(index[rows] + categories.index(label) * (bins + 2))
        weights.append(w)
    value, variance = cell_sums(chosen, cells, weights, len(categories) * (bins + 2))
    booked = empty_histogram(obs, spec)
    h = hist.Hist(hist.axis.StrCategory(categories, name="variation", label="variation", growth=True),
                  booked.axes[1], storage=hist.storage.Weight())
    view = h.view(flow=True)
    view["value"] = value.reshape(len(categories), bins + 2)
    view["variance"] = variance.reshape(len(categories), bins + 2)
    return h


def flow_index(xp: Any, x: Any, bins: int, low: float, high: float) -> Any:
    """Bin index of each value with flow bins (0 underflow, ``bins + 1`` overflow), computed
    as boost-histogram's regular axis computes it (NaN counts as overflow, like boost).

    >>> import numpy as np
    >>> flow_index(np, np.array([-1.0, 0.0, 0.5, 9.99, 10.0, np.inf, np.nan]), 10, 0.0, 10.0).tolist()
    [0, 1, 1, 10, 11, 11, 11]
    """
    delta = high - low
    x = x.astype(xp.float64, copy=False)        # boost computes in double whatever the column holds
    if xp.__name__ == "cupy":
        return _index_kernel()(x, low, delta, bins)
    with xp.errstate(invalid="ignore"):
        z = (x - low) / delta
        inside = (z >= 0) & (z < 1)
        inner = (xp.where(inside, z, 0.0) * bins).astype(xp.int64) + 1
        return xp.where(inside, inner, xp.where(z < 1, 0, bins + 1)).astype(xp.int64)


def cell_sums(chosen: Backend, cells: list, weights: list, ncells: int) -> tuple[Any, Any]:
    """Per cell, the sum of weights and of squared weights, each added in row order (host arrays).

    >>> import numpy as np
    >>> value, variance = cell_sums(backend("cpu"), [np.array([1, 1, 2])], [np.array([0.5, 0.25, 2.0])], 3)
    >>> value.tolist(), variance.tolist()
    ([0.0, 0.75, 2.0], [0.0, 0.3125, 4.0])
    """
    xp = chosen.xp
    if not cells:
        import numpy

        return numpy.zeros(ncells), numpy.zeros(ncells)
    cell, w = xp.concatenate(cells), xp.concatenate(weights).astype(xp.float64, copy=False)
    if chosen.name == "numpy":                  # bincount adds in row order: boost's sums
        return xp.bincount(cell, w, minlength=ncells), xp.bincount(cell, w * w, minlength=ncells)
    return _gpu_cell_sums(xp, cell, w, ncells)


def segments(xp: Any, cell: Any, w: Any, ncells: int) -> tuple[Any, Any, Any]:
    """The weights grouped by cell, each cell's rows in their original order, and where
    each cell's group starts and ends (the sort keys ``cell * n + position`` are unique, so
    the order does not depend on the sort algorithm's stability).

    >>> import numpy as np
    >>> grouped, starts, ends = segments(np, np.array([2, 0, 2, 0]), np.array([1.0, 2.0, 3.0, 4.0]), 3)
    >>> grouped.tolist(), starts.tolist(), ends.tolist()
    ([2.0, 4.0, 1.0, 3.0], [0, 2, 2], [2, 2, 4])
    """
    n = int(cell.size)
    order = xp.argsort(cell.astype(xp.int64) * n + xp.arange(n, dtype=xp.int64))
    counts = xp.bincount(cell, minlength=ncells).astype(xp.int64)
    ends = xp.cumsum(counts)
    return xp.ascontiguousarray(w[order]), ends - counts, ends


def _gpu_cell_sums(cp: Any, cell: Any, w: Any, ncells: int) -> tuple[Any, Any]:
    """The deterministic segmented reduction on the GPU (module docstring, steps 3 and 4)."""
    grouped, starts, ends = segments(cp, cell, w, ncells)
    value = cp.empty(ncells, dtype=cp.float64)
    variance = cp.empty(ncells, dtype=cp.float64)
    threads = 128
    _sums_kernel()(((ncells + threads - 1) // threads,), (threads,),
                   (grouped, starts, ends, value, variance, cp.int64(ncells)))
    return cp.asnumpy(value), cp.asnumpy(variance)


@functools.lru_cache(maxsize=None)
def _sums_kernel() -> Any:
    import cupy

    return cupy.RawKernel(_SUMS_SOURCE, "heirloom_cell_sums", options=("--fmad=false",))


@functools.lru_cache(maxsize=None)
def _index_kernel() -> Any:
    import cupy

    return cupy.ElementwiseKernel("float64 x, float64 low, float64 delta, int64 bins", "int64 cell",
                                  _INDEX_BODY, "heirloom_flow_index")
