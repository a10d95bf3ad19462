"""``heirloom``: explain why tasks would rerun, and show where results are.

    heirloom why Plot --config configs/demo.yaml
    heirloom show --config configs/demo.yaml
    heirloom runs [--last N]
    heirloom export yadage|snakemake|reana|all --config configs/agc_ttbar.yaml [--task Plot] [--image NAME:TAG]
    heirloom export recast --config configs/reinterpret_example.yaml --new-signal configs/reinterpret_zprime_1000.yaml
    heirloom step Skim --config analysis.yaml --store /abs/store --dataset ttbar --chunk 0   (used by exports)
"""

from __future__ import annotations

import argparse
import json
import sys

from analysis.errors import ConfigError, FitError, HeirloomError, InputError, StoreError
from analysis.store import objects as store
from analysis.store.provenance import diff_components


def _task(name: str, config: str, extra: dict):
    import tasks

    if name not in tasks.__all__:
        raise SystemExit(f"heirloom: unknown task '{name}' ({', '.join(tasks.__all__)})")
    return getattr(tasks, name)(config=config, **extra)


def explain(task, seen: set | None = None, depth: int = 0) -> list[str]:
    """Lines saying, for ``task`` and what it needs, whether it would run and why."""
    seen = set() if seen is None else seen
    ident = (task.task_family, task.label())
    if ident in seen:
        return []
    seen.add(ident)
    pad = "  " * depth
    entry = task.store_entry()
    if entry.exists():
        return [f"{pad}{task.task_family}[{task.label()}]: up to date ({entry.key[:12]})"]
    link = store.by_name(entry.root, task.cfg.name, task.task_family, task.label())
    lines = []
    if link.exists():
        record = json.loads((link / "provenance.json").read_text())
        reasons = _reasons(record, task)
        lines.append(f"{pad}{task.task_family}[{task.label()}]: WOULD RUN; differs from the last run "
                     f"({link.resolve().name[:12]}):")
        lines += [f"{pad}    {reason}" for reason in reasons] or [f"{pad}    (no component differs: output missing)"]
    else:
        lines.append(f"{pad}{task.task_family}[{task.label()}]: WOULD RUN; never ran for this analysis")
    for child in task.input_tasks().values():
        lines += explain(child, seen, depth + 1)
    return lines


def _reasons(record: dict, task) -> list[str]:
    """Why ``task`` differs from the run recorded in ``record`` (its provenance)."""
    from tasks.base import KEY_FORMAT, code_identity

    old, new = record["components"], task.components()
    if old.get("key_format", 1) != KEY_FORMAT:
        return [f"key format changed ({old.get('key_format', 1)} -> {KEY_FORMAT}): keys now derive from the "
                "code and the environment (docs/explanation.md); every task reruns once"]
    reasons = [r for r in diff_components(old, new) if not r.startswith(("inputs.", "code.identity"))]
    if old["code"]["identity"] != new["code"]["identity"]:
        before, now = record.get("code_units", {}), code_identity(type(task))["units"]
        changed = sorted(u for u in set(before) | set(now) if before.get(u) != now.get(u))
        reasons.append("code changed: " + (", ".join(changed[:8]) + (" ..." if len(changed) > 8 else "")
                                            if changed else "(a unit moved or was renamed)"))
    changed_inputs = [r.split(":")[0] for r in diff_components(old.get("inputs", {}), new["inputs"])]
    if changed_inputs:
        reasons.append("inputs changed: " + ", ".join(sorted({c.split(".")[0] for c in changed_inputs})))
    return reasons


def show(config: str) -> list[str]:
    """Where the final outputs of an analysis are, with the fit result."""
    from tasks.results import Fit, Plot

    from analysis.load import load_config

    lines = []
    cfg = load_config(config)
    if "likelihood" in cfg.data:
        return show_likelihood(config)
    if cfg.data.get("limit"):
        lines += show_limit(config)
    if not cfg.data.get("model"):
        return ["this config has no statistical model: see its histograms with "
                f"`law run Histograms --config {config} --print-output 0`"]
    fit, plot = Fit(config=config), Plot(config=config)
    if fit.store_entry().exists():
        result = json.loads((fit.store_entry().path / "fit_result.json").read_text())
        prov = fit.store_entry().provenance()
        poi = prov.get("poi", {})
        lines.append(f"fit result : {fit.store_entry().path / 'fit_result.json'}")
        if poi:
            lines.append(f"             {poi['name']} = {poi['value']:.4f} +- {poi['uncertainty']:.4f}")
        del result
    if plot.store_entry().exists():
        path = plot.store_entry().path
        lines.append(f"plots      : {path}")
        lines += [f"             {p.name}" for p in sorted(path.glob("*.png"))]
        lines.append(f"cutflow    : {path / 'cutflow.md'}")
        lines.append((path / "cutflow.md").read_text().rstrip())
    if not cfg.data.get("external_histograms"):
        from tasks.agc_layout import AGCHistograms

        layout = AGCHistograms(config=config).store_entry()
        if layout.exists():
            lines.append(f"AGC layout : {layout.path / 'histograms.root'}")
    return lines or ["no results yet: run `law run Plot --config " + config + "`"]


def show_likelihood(config: str) -> list[str]:
    """Where the CLs scan and the exclusion plot of a published likelihood are."""
    from tasks.likelihood import CLsScan, ExclusionPlot

    lines = []
    scan, plot = CLsScan(config=config).store_entry(), ExclusionPlot(config=config).store_entry()
    if scan.exists():
        summary = scan.provenance().get("scan", {})
        lines.append(f"CLs scan   : {scan.path / 'cls.json'}")
        if summary:
            lines.append(f"             {summary['points']} points, {summary['excluded']} excluded (observed CLs < 0.05)")
    if plot.exists():
        lines.append(f"exclusion  : {plot.path}")
        lines += [f"             {p.name}" for p in sorted(plot.path.iterdir()) if p.name != "provenance.json"]
    return lines or [f"no results yet: run `law run ExclusionPlot --config {config}`"]


def show_limit(config: str) -> list[str]:
    """Where the limit on a new signal is, with its values."""
    from tasks.reinterpret import Limit

    entry = Limit(config=config).store_entry()
    if not entry.exists():
        return [f"limit      : not computed yet (law run Limit --config {config})"]
    limit = entry.provenance().get("limit", {})
    lines = [f"limit      : {entry.path / 'limit.json'}"]
    if limit:
        expected = ", ".join(f"{x:.3f}" for x in limit["expected"])
        lines.append(f"             {limit['poi']} < {limit['observed']:.3f} observed ({round(100 * limit['cl'])}% CL); "
                     f"expected -2..+2 sigma: {expected}")
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heirloom", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    why = sub.add_parser("why", help="explain which tasks would run, and why")
    why.add_argument("task")
    why.add_argument("--config", required=True)
    why.add_argument("--dataset")
    why.add_argument("--chunk", type=int)
    shw = sub.add_parser("show", help="where the results of an analysis are")
    shw.add_argument("--config", required=True)
    runs = sub.add_parser("runs", help="the tasks that ran, newest last")
    runs.add_argument("--last", type=int, default=20)
    ver = sub.add_parser("verify", help="recheck what the store trusts (--inputs: rehash every input file)")
    ver.add_argument("--inputs", action="store_true", required=True,
                     help="rehash every raw input file in the store's manifest, ignoring the cache")
    ver.add_argument("--config", help="only the input files of this config's datasets")
    exp = sub.add_parser("export", help="write the config's DAG as a yadage workflow, a Snakefile or reana.yaml")
    exp.add_argument("kind", choices=("yadage", "snakemake", "reana", "recast", "all"))
    exp.add_argument("--config", required=True)
    exp.add_argument("--task", default="Plot", help="the final task (default: Plot)")
    exp.add_argument("--out", help="folder (yadage, snakemake) or file (reana); default: "
                     "workflows/<kind>/<analysis>/, reana.yaml")
    exp.add_argument("--image", help="analysis image NAME:TAG (default: $HEIRLOOM_IMAGE or heirloom/analysis:<version>)")
    exp.add_argument("--new-signal", help="recast: a fork with another signal, the catalogue's 'newsignal' example")
    stp = sub.add_parser("step", help="run one task of an exported workflow (law run, in the Heirloom folder)")
    stp.add_argument("task")
    stp.add_argument("--config", required=True)
    stp.add_argument("--store", required=True)
    stp.add_argument("--publish", help="write task, key and output folder to this YAML file")
    return parser


def _step(args, rest) -> int:
    from tasks.export.step import run_step

    return run_step(args.task, args.config, args.store, [a for a in rest if a != "--"], args.publish)


def _export(args) -> int:
    from tasks.export import export

    task = "Limit" if args.kind == "recast" and args.task == "Plot" else args.task
    for path in export(args.kind, args.config, task, args.out, args.image, args.new_signal):
        print(path)
    return 0


def _runs(args) -> int:
    for record in (store.read_runs()[-args.last:] if args.last > 0 else []):
        print(f"{record['finished']}  {record['task']:<11} {record['label']:<28} "
              f"{record['key'][:12]}  {record['seconds']:.1f} s")
    return 0


def verify_inputs(config: str | None = None) -> tuple[list[str], int]:
    """Rehash input files from scratch and compare with the cached digests: (the lines to
    print, how many files changed).

    A file whose content changed while its size, mtime, ctime and inode did not is
    reported (``CHANGED``) and its cache entry replaced, so the next run uses the new key.
    """
    from tasks.base import manifest

    ledger = manifest()
    if config:
        from analysis.io.datasets import input_files, is_generated
        from analysis.load import load_config

        cfg = load_config(config)
        wanted = [(path, spec.get("tree", cfg.tree), spec.get("format")) for name, spec in cfg.datasets.items()
                  if spec["kind"] != "pseudodata" and "files" in spec and not is_generated(cfg, name)
                  for path in input_files(cfg, name)]
    else:
        wanted = ledger.cached_paths()
    lines, changed, unreadable = [], 0, 0
    for path, tree, fmt in wanted:
        before = ledger.cached_key(path, tree)
        try:
            now = ledger.identify(path, tree, fmt, rehash=True).key()
        except InputError as err:
            unreadable += 1
            lines.append(f"MISSING  {path}: {err}")
            continue
        if before is not None and before != now:
            changed += 1
            lines.append(f"CHANGED  {path}: content differs from the cached digest (was {before['blake3'][:16]}, "
                         f"now {now['blake3'][:16]})")
        else:
            lines.append(f"ok       {path}  blake3:{now['blake3'][:16]}  {now['size']} bytes")
    ledger.save()
    if unreadable:
        lines.append(f"{unreadable} cached input file(s) missing or unreadable (moved or deleted: not an error)")
    lines.append(f"{len(wanted)} input files rehashed, {changed} changed")
    return lines, changed


def main(argv: list[str] | None = None) -> int:
    """The ``heirloom`` command. A Heirloom error ends it with one line: exit status 2, or 1
    when ``verify`` found damage."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "step":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "step":
            return _step(args, rest)
        if args.command == "export":
            return _export(args)
        if args.command == "why":
            extra = {k: v for k, v in (("dataset", args.dataset), ("chunk", args.chunk)) if v is not None}
            print("\n".join(explain(_task(args.task, args.config, extra))))
        elif args.command == "show":
            print("\n".join(show(args.config)))
        elif args.command == "verify":
            lines, changed = verify_inputs(args.config)
            print("\n".join(lines), flush=True)
            if changed:
                raise StoreError(f"{changed} input file(s) changed behind the cache: see above; the cache now "
                                 "holds their new digests")
        else:
            return _runs(args)
    except StoreError as err:
        print(f"heirloom: {err}", file=sys.stderr)
        return 1
    except HeirloomError as err:
        print(f"heirloom: {_kind(err)}{err}", file=sys.stderr)
        return 2
    except BrokenPipeError:                 # `heirloom ... | head`
        sys.stderr.close()
        return 0
    return 0


def _kind(err: HeirloomError) -> str:
    """``config error: `` and the like, before the one line of an error."""
    kinds = ((ConfigError, "config error: "), (InputError, "input error: "), (FitError, "fit error: "))
    return next((label for cls, label in kinds if isinstance(err, cls)), "")


if __name__ == "__main__":
    sys.exit(main())
