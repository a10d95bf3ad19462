"""The GPU check: the GPU paths give the CPU's results, and how fast each is.

1. Makes a Select-like table of ``--events`` rows (three variations, two regions, two
   observables, four b-tag weight variations, seeded), fills its histograms with the CPU
   path (``fill_from_table``, boost-histogram) and with ``histogram: {device: cuda}``
   (:mod:`analysis.hist.device_fill`: cupy on the GPU), and asserts that they are
   identical: equal hist objects and byte-identical ``uhi.io`` JSON. Prints events/s of
   each (median of ``--repeat`` runs; the GPU's includes moving the columns to the device
   and the sums back, after one warm-up run that compiles the kernels).
2. Runs the ONNX model ``configs/models/agc_assignment.onnx`` (when present) on
   ``--rows`` random feature rows with ONNX Runtime's CPU and CUDA execution providers
   (``analysis.ml.onnx_model.load_session``, as Select does), prints rows/s of each and
   the largest difference of the scores (inference on a GPU is close, not bit-identical,
   so a model with ``device: cuda`` has its device in Select's key).

Without cupy, a CUDA device or onnxruntime-gpu it runs the CPU parts, says what is
missing and exits 0. On a CUDA machine::

    .venv/bin/pip install -r requirements-gpu.in     # cupy-cuda12x, onnxruntime-gpu
    .venv/bin/python benchmarks/gpu_check.py --events 10000000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from _common import ROOT, machine, markdown_table, stats, timed

MODEL = ROOT / "configs" / "models" / "agc_assignment.onnx"
REGIONS = {"4j1b": ["ht"], "4j2b": ["m_bjj"]}
OBSERVABLES = {"ht": {"bins": 25, "range": [50, 550], "label": "H_T [GeV]"},
               "m_bjj": {"bins": 25, "range": [50, 550], "label": "m_bjj [GeV]"}}
WEIGHTS = ("btag_var_0_up", "btag_var_0_down", "btag_var_1_up", "btag_var_1_down")


def make_table(events: int, seed: int = 1):
    """One row per event and variation, as Select writes it (``analysis.select.tables``)."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    variation = rng.choice(np.array(["nominal", "jes_up", "jes_down"]), events, p=[0.6, 0.2, 0.2])
    region = rng.choice(np.array(["4j1b", "4j2b"]), events)
    ht = rng.gamma(4.0, 80.0, events)
    m_bjj = rng.normal(175.0, 60.0, events)
    columns = {"variation": pa.array(variation).dictionary_encode(), "region": pa.array(region).dictionary_encode(),
               "obs_ht": np.where(region == "4j1b", ht, np.nan), "obs_m_bjj": np.where(region == "4j2b", m_bjj, np.nan),
               "w_nominal": rng.normal(1.0, 0.1, events)}
    for name in WEIGHTS:
        columns[f"w_{name}"] = np.where(variation == "nominal", columns["w_nominal"] * rng.normal(1, 0.05, events),
                                        np.nan)
    return pa.table(columns)


def check_histograms(events: int, repeat: int) -> tuple[list, bool]:
    """Rows of the filling table; whether the GPU ran (it asserts the GPU's equality)."""
    from analysis.hist import histograms
    from analysis.hist.device_fill import backend, fill_on_device

    table = make_table(events)
    scale = 0.1094761234
    cpu = histograms.fill_from_table(table, REGIONS, OBSERVABLES, scale)
    reference = json.dumps(cpu, default=_uhi_default, sort_keys=True)
    rows = [_row("CPU: fill_from_table (boost-histogram)", events,
                 timed(lambda: histograms.fill_from_table(table, REGIONS, OBSERVABLES, scale), repeat))]
    numpy_path, _ = fill_on_device(table, REGIONS, OBSERVABLES, scale, device="cpu")
    assert numpy_path == cpu and json.dumps(numpy_path, default=_uhi_default, sort_keys=True) == reference
    rows.append(_row("CPU: device_fill with numpy", events,
                     timed(lambda: fill_on_device(table, REGIONS, OBSERVABLES, scale, device="cpu"), repeat)))
    chosen = backend("cuda")
    if chosen.name != "cupy":
        print(f"No CUDA device for the histograms: {chosen.fallback}. GPU filling not measured.", file=sys.stderr)
        return rows, False
    gpu, info = fill_on_device(table, REGIONS, OBSERVABLES, scale, device="cuda")      # warm-up: compiles
    assert info["backend"] == "cupy", info
    assert gpu == cpu, "the GPU's histograms differ from the CPU's"
    assert json.dumps(gpu, default=_uhi_default, sort_keys=True) == reference, "the GPU's JSON differs"
    rows.append(_row("GPU: device_fill with cupy", events,
                     timed(lambda: fill_on_device(table, REGIONS, OBSERVABLES, scale, device="cuda"), repeat)))
    return rows, True


def check_inference(rows_n: int, repeat: int) -> list:
    """Rows of the inference table (empty without the model)."""
    if not MODEL.exists():
        print(f"{MODEL.relative_to(ROOT)} is absent: inference not measured.", file=sys.stderr)
        return []
    from analysis.errors import InputError
    from analysis.ml.onnx_model import infer, load_session, read_model

    data = read_model(MODEL)
    features = np.random.default_rng(2).normal(size=(rows_n, 10)).astype(np.float32)
    cpu_session = load_session(data, "cpu")
    reference, = infer(cpu_session, {"features": features}, ["score"], rows_n)
    out = [_row("CPU: CPUExecutionProvider (1 thread)", rows_n,
                timed(lambda: infer(cpu_session, {"features": features}, ["score"], rows_n), repeat))]
    try:
        cuda_session = load_session(data, "cuda")
    except InputError as err:
        print(f"No CUDA for ONNX Runtime: {err}. GPU inference not measured.", file=sys.stderr)
        return out
    scores, = infer(cuda_session, {"features": features}, ["score"], rows_n)         # warm-up
    difference = float(np.max(np.abs(scores - reference)))
    assert difference < 1e-4, f"CUDA scores differ from the CPU's by up to {difference}"
    out.append(_row(f"GPU: CUDAExecutionProvider (max |diff| {difference:.1e})", rows_n,
                    timed(lambda: infer(cuda_session, {"features": features}, ["score"], rows_n), repeat)))
    return out


def _row(what: str, n: int, times: list) -> list:
    median, low, high = stats(times)
    return [what, median, low, high, n / median]


def _uhi_default(obj):
    import uhi.io.json

    return uhi.io.json.default(obj)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000, help="rows of the histogram table")
    parser.add_argument("--rows", type=int, default=1_000_000, help="feature rows for the ONNX model")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    t0 = time.perf_counter()
    fill_rows, gpu = check_histograms(args.events, args.repeat)
    print(f"## Histogram filling, {args.events:,} rows\n")
    print(markdown_table(["path", "median [s]", "min [s]", "max [s]", "events/s"], fill_rows))
    if gpu:
        print("\nThe GPU's histograms are identical to the CPU's (hist equality and byte-identical JSON).")
    inference = check_inference(args.rows, args.repeat)
    if inference:
        print(f"\n## ONNX inference, {args.rows:,} rows of 10 features\n")
        print(markdown_table(["provider", "median [s]", "min [s]", "max [s]", "rows/s"], inference))
    print(f"\n{machine()}; {time.perf_counter() - t0:.0f} s in all")
    if not gpu:
        print("No CUDA device is available: only the CPU paths ran.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
