"""Reinterpretation of a published likelihood: PublishedLikelihood -> CLsScan -> ExclusionPlot.

A config with a ``likelihood:`` section (instead of datasets and regions) names a HEPData
pyhf archive; ``law run ExclusionPlot --config configs/sbottom_regionA.yaml`` reads it,
computes CLs for every signal point (over ``--executor``/``--workers``, which enter no
key) and draws the exclusion. ``docs/reinterpretation.md`` is the user's guide.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tasks.base import HeirloomTask
from tasks.execution import execution, pool_size


def _archive_excerpt(cfg) -> dict:
    """What the PatchSet depends on besides the archive's content (the path is left out)."""
    from analysis.likelihood.published import hepdata_record, section

    spec = section(cfg)
    return {"region": spec["region"], "background_only": spec["background_only"], "patches": spec["patches"],
            "labels": spec["labels"], "hepdata": hepdata_record(cfg)}


class PublishedLikelihood(HeirloomTask):
    """The archive's background-only workspace and its signal points as one pyhf PatchSet.

    Its key holds the archive's content (BLAKE3 digest), not its path. Writes ``BkgOnly.json``
    (the workspace) and ``patchset.json`` (pyhf's PatchSet format, checked by pyhf).
    """

    def config_excerpt(self):
        return _archive_excerpt(self.cfg)

    def raw_inputs(self):
        from analysis.likelihood.published import identify

        return {"archive": identify(self.cfg)}

    def requires(self):
        return {}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.likelihood.published import read_likelihood

        likelihood = read_likelihood(self.cfg)
        (outdir / "BkgOnly.json").write_text(json.dumps(likelihood.background_only, indent=1, sort_keys=True))
        (outdir / "patchset.json").write_text(json.dumps(likelihood.patchset, indent=1, sort_keys=True))
        points = len(likelihood.patchset["patches"])
        print(f"PublishedLikelihood: background-only workspace and {points} signal points "
              f"({', '.join(likelihood.patchset['metadata']['labels'])})", flush=True)
        return {"likelihood": {"points": points, "digest": likelihood.patchset["metadata"]["digests"]["sha256"]}}


class CLsScan(HeirloomTask):
    """Observed CLs and the expected band of every selected point (``likelihood.points``)
    at ``poi_value``, spread over the executor. Writes ``cls.json``."""

    def config_excerpt(self):
        from analysis.likelihood.published import point_patterns, section

        spec = section(self.cfg)
        return {"test_statistic": spec["test_statistic"], "poi_value": float(spec["poi_value"]),
                "calculator": spec["calculator"], "points": point_patterns(self.cfg)}

    def requires(self):
        return {"likelihood": PublishedLikelihood.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.likelihood import cls_scan
        from analysis.likelihood.published import select_points

        excerpt = self.config_excerpt()
        background_only = json.loads((inputs["likelihood"] / "BkgOnly.json").read_text())
        patchset = json.loads((inputs["likelihood"] / "patchset.json").read_text())
        labels = patchset["metadata"]["labels"]
        chosen = set(select_points([p["metadata"]["name"] for p in patchset["patches"]], excerpt["points"]))
        patches = [p for p in patchset["patches"] if p["metadata"]["name"] in chosen]
        settings = cls_scan.ScanSettings(excerpt["test_statistic"], excerpt["poi_value"], excerpt["calculator"])
        run = execution()
        print(f"CLsScan: {len(patches)} points on the {run.executor} executor "
              f"({pool_size()} worker(s))", flush=True)
        t0 = time.time()
        try:
            points = cls_scan.scan(background_only, patches, settings, labels, executor=run.executor,
                                   workers=pool_size(), scheduler=run.scheduler or None)
        finally:
            _close_local_cluster_of_subprocess()
        seconds = time.time() - t0
        cls_scan.write_table(cls_scan.table(points, labels, settings), outdir / "cls.json")
        excluded = sum(p.excluded for p in points)
        print(f"CLsScan: {excluded} of {len(points)} points excluded (observed CLs < {cls_scan.CLS_LIMIT})",
              flush=True)
        return {"scan": {"points": len(points), "excluded": excluded, "seconds": round(seconds, 3),
                         "points_per_second": round(len(points) / max(seconds, 1e-9), 4)}}


def _close_local_cluster_of_subprocess() -> None:
    """With ``--workers N > 1`` luigi runs each task in a forked process that ends with
    ``os._exit``, which skips the atexit handler closing the local Dask cluster: its
    nannies then die noisily (multiprocessing tracebacks). Close it here instead."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        from analysis.select.executors import _close_clusters

        _close_clusters()


class ExclusionPlot(HeirloomTask):
    """The exclusion in the plane of ``likelihood.plot.x``/``y`` (``exclusion.png``) and
    every point's CLs as ``cls_table.md`` and ``cls_table.csv``."""

    def config_excerpt(self):
        from analysis.likelihood.published import plot_axes, section

        spec = section(self.cfg)
        plot = dict(spec.get("plot", {}))
        plot["x"], plot["y"] = plot_axes(spec)
        return {"plot": plot}

    def requires(self):
        return {"scan": CLsScan.req(self)}

    def produce(self, outdir: Path, inputs: dict) -> dict:
        from analysis.likelihood.cls_scan import read_points
        from analysis.likelihood.exclusion import plot_exclusion, write_tables

        content = json.loads((inputs["scan"] / "cls.json").read_text())
        points = read_points(content)
        plot = self.config_excerpt()["plot"]
        written = plot_exclusion(points, outdir, x=plot["x"], y=plot["y"], fix=plot.get("fix"), style=plot)
        written += write_tables(points, content["labels"], outdir)
        print(f"ExclusionPlot: {', '.join(p.name for p in written)}", flush=True)
        return {}
