"""``heirloom``: explain why tasks would rerun, and show where results are.

    heirloom why Plot --config configs/demo.yaml
    heirloom show --config configs/demo.yaml
    heirloom report --config configs/demo.yaml [--out DIR]   a static HTML report (docs/report.md)
    heirloom runs [--last N] [--analysis NAME]
    heirloom diff KEY KEY | heirloom diff TASK --config A --config B
    heirloom verify --all | --config C [--report-only]   rehash stored objects; --inputs: the raw input files
    heirloom gc --config C [--older-than DAYS] [--delete]   remove what no config reaches (dry run by default)
    heirloom trust FILE                        allow a plugin file to run (docs/security.md)
    heirloom export yadage|snakemake|reana|all --config configs/agc_ttbar.yaml [--task All] [--image NAME:TAG]
    heirloom export recast --config configs/reinterpret_example.yaml --new-signal configs/reinterpret_zprime_1000.yaml
    heirloom export check [--reana reana.yaml] [FOLDER ...]   a bundle's inputs inside, present, hashed; image pinned
    heirloom step Skim --of Plot --config analysis.yaml --store /abs/store [--upstream STORE ...]   (used by exports)
"""

from __future__ import annotations

import argparse
import json
import sys

from analysis.errors import ConfigError, FitError, HeirloomError, InputError, StoreError
from analysis.store import integrity
from analysis.store import objects as store
from analysis.store.provenance import diff_components
from analysis.store.remote import remote_store


def _task(name: str, config: str, extra: dict):
    import tasks

    if name not in tasks.__all__:
        import difflib

        close = difflib.get_close_matches(name, tasks.__all__, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise SystemExit(f"heirloom: unknown task '{name}'{hint} (the tasks: {', '.join(tasks.__all__)})")
    return getattr(tasks, name)(config=config, **extra)


def explain(task, seen: set | None = None, depth: int = 0) -> list[str]:
    """Lines saying, for ``task`` and what it needs, whether it would run and why."""
    seen = set() if seen is None else seen
    if not hasattr(task, "store_entry"):               # All: a wrapper, no object of its own
        return [line for child in task.requires() for line in explain(child, seen, depth)]
    ident = (task.task_family, task.label())
    if ident in seen:
        return []
    seen.add(ident)
    pad = "  " * depth
    entry = task.store_entry()
    problem = integrity.incomplete(entry)
    if problem is None or task.complete():
        where = "" if problem is None else f" in {store.store_url()}"
        return [f"{pad}{task.task_family}[{task.label()}]: up to date ({entry.key[:12]}{where})"]
    link = store.by_name(entry.root, task.cfg.name, task.task_family, task.label())
    lines = []
    record = _provenance(link)
    if entry.path.exists():
        lines.append(f"{pad}{task.task_family}[{task.label()}]: WOULD RUN; its object {entry.key[:12]} is damaged "
                     f"({problem})")
    elif record is not None:
        reasons = _reasons(record, task)
        lines.append(f"{pad}{task.task_family}[{task.label()}]: WOULD RUN; differs from the last run "
                     f"({link.resolve().name[:12]}):")
        lines += [f"{pad}    {reason}" for reason in reasons] or [f"{pad}    (no component differs: output missing)"]
    else:
        lines.append(f"{pad}{task.task_family}[{task.label()}]: WOULD RUN; never ran for this analysis")
    for child in task.input_tasks().values():
        lines += explain(child, seen, depth + 1)
    return lines


def _provenance(link) -> dict | None:
    """The provenance record behind a by-name link, or None (no link, damaged object)."""
    try:
        record = json.loads((link / "provenance.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("components"), dict) else None


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
    rep = sub.add_parser("report", help="a static HTML report of an analysis: plots, results, tables, the task "
                         "graph, provenance (opens from disk)")
    rep.add_argument("--config", required=True)
    rep.add_argument("--out", help="folder for index.html and assets/ (default: <store>/reports/<analysis>/)")
    runs = sub.add_parser("runs", help="the tasks that ran, newest last")
    runs.add_argument("--last", type=int, default=20)
    runs.add_argument("--analysis", help="only the runs of this analysis (its config's name)")
    dif = sub.add_parser("diff", help="what differs between two results: two keys, or one task under two configs")
    dif.add_argument("what", nargs="+", help="two key prefixes, or a task name with --config A --config B")
    dif.add_argument("--config", action="append", default=[], help="a config (twice, with a task name)")
    dif.add_argument("--dataset")
    dif.add_argument("--chunk", type=int)
    ver = sub.add_parser("verify", help="rehash stored objects (--all or --config) or input files (--inputs)")
    ver.add_argument("--all", action="store_true", help="every object in the store")
    ver.add_argument("--config", help="the objects of this config's DAG (with --inputs: its input files)")
    ver.add_argument("--inputs", action="store_true",
                     help="rehash every raw input file in the store's manifest, ignoring the cache")
    ver.add_argument("--report-only", action="store_true",
                     help="only name damaged objects (default: move them to <store>/quarantine/)")
    gc = sub.add_parser("gc", help="remove objects no given config reaches, or older than an age (dry run)")
    gc.add_argument("--config", action="append", default=[], help="keep what this config reaches (repeatable)")
    gc.add_argument("--older-than", type=float, metavar="DAYS", help="only objects older than DAYS days")
    gc.add_argument("--delete", action="store_true", help="delete (default: only say what and how much)")
    tru = sub.add_parser("trust", help="allow a plugin file (its current content) to run")
    tru.add_argument("file")
    exp = sub.add_parser("export", help="write the config's DAG as a yadage workflow, a Snakefile or reana.yaml")
    exp.add_argument("kind", choices=("yadage", "snakemake", "reana", "recast", "all", "check"))
    exp.add_argument("folders", nargs="*", metavar="FOLDER", help="check: the bundle folders to check")
    exp.add_argument("--config", help="the config to export (all kinds but check)")
    exp.add_argument("--reana", metavar="FILE", help="check: a reana.yaml whose workspace to check")
    exp.add_argument("--task", default="All", help="the final task (default: All, everything the config produces)")
    exp.add_argument("--out", help="folder (yadage, snakemake) or file (reana); default: "
                     "workflows/<kind>/<analysis>/, reana.yaml")
    exp.add_argument("--image", help="analysis image NAME:TAG (default: $HEIRLOOM_IMAGE or heirloom/analysis:<version>)")
    exp.add_argument("--new-signal", help="recast: a fork with another signal, the catalogue's 'newsignal' example")
    stp = sub.add_parser("step", help="run one task of an exported workflow (law run, in the Heirloom folder)")
    stp.add_argument("task")
    stp.add_argument("--config", required=True)
    stp.add_argument("--store", required=True)
    stp.add_argument("--publish", help="write task, key and output folder to this YAML file")
    stp.add_argument("--of", metavar="TOP", help="run every task of this family under TOP (e.g. Plot) together")
    stp.add_argument("--upstream", nargs="*", default=[], metavar="STORE",
                     help="read-only stores of the steps this one depends on")
    stp.add_argument("--results", metavar="DIR", help="copy the outputs, as files, to DIR/<Task>/<label>/")
    return parser


def _step(args, rest) -> int:
    from tasks.export.step import run_step

    return run_step(args.task, args.config, args.store, [a for a in rest if a != "--"], args.publish,
                    of=args.of, upstream=args.upstream, results=args.results)


def _export(args) -> int:
    from tasks.export import export

    if args.kind == "check":
        from tasks.export.check import main as check

        return check(args.folders, args.reana)
    if args.folders or args.reana or not args.config:
        print(f"heirloom export {args.kind}: needs --config, and takes no FOLDER nor --reana (those are for "
              "`heirloom export check`)", file=sys.stderr)
        return 2
    task = "Limit" if args.kind == "recast" and args.task == "All" else args.task
    for path in export(args.kind, args.config, task, args.out, args.image, args.new_signal):
        print(path)
    return 0


def _verify(args) -> None:
    from tasks import maintenance

    if args.inputs:
        lines, changed = verify_inputs(args.config)
        print("\n".join(lines), flush=True)
        if changed:
            raise StoreError(f"{changed} input file(s) changed behind the cache: see above; the cache now "
                             "holds their new digests")
        return
    if not (args.all or args.config):
        raise HeirloomError("say what to verify: --all, --config C, or --inputs")
    shared = remote_store()
    if shared is not None:
        return _verify_remote(args, shared)
    root = store.check_layout(store.store_root())
    entries = maintenance.all_entries(root)
    if args.config:
        wanted = maintenance.reachable([args.config])
        entries = [e for e in entries if (e.family, e.key) in wanted]
    findings = maintenance.verify(root, entries, quarantine=not args.report_only)
    print(f"{len(entries)} objects rehashed, {len(findings)} damaged", flush=True)
    if findings:
        named = ", ".join(f"{f.entry.family}/{f.entry.key[:12]}" for f in findings[:5])
        raise StoreError(f"{len(findings)} damaged object(s): {named}{' ...' if len(findings) > 5 else ''}"
                         + ("" if args.report_only else "; moved to quarantine: the next `law run` that needs "
                                                           "them recomputes them"))


def _verify_remote(args, shared) -> None:
    from tasks import maintenance, remote_upkeep

    wanted = maintenance.reachable([args.config]) if args.config else None
    checked, damaged = remote_upkeep.verify(shared, wanted, quarantine=not args.report_only)
    print(f"{checked} objects in {shared.url} downloaded and rehashed, {len(damaged)} damaged", flush=True)
    if damaged:
        named = ", ".join(f"{family}/{key[:12]}" for family, key, _ in damaged[:5])
        raise StoreError(f"{len(damaged)} damaged object(s) in {shared.url}: {named}"
                         + ("" if args.report_only else "; taken out of the store: the next `law run` that needs "
                                                           "them recomputes them"))


def _gc_remote(args, shared, keep) -> None:
    from tasks import maintenance, remote_upkeep

    chosen, orphans = remote_upkeep.collect(shared, keep=keep, older_than_days=args.older_than)
    for family, item in chosen:
        print(f"{'remove' if args.delete else 'would remove'}  {family}/{item.key}  "
              f"{maintenance.human(item.size) if item.size else ''}")
    if orphans:
        print(f"{'remove' if args.delete else 'would remove'}  {len(orphans)} files of unfinished commits")
    if args.delete:
        remote_upkeep.remove(shared, chosen, orphans)
        print(f"removed {len(chosen)} objects from {shared.url}")
    else:
        print(f"{len(chosen)} objects in {shared.url} (dry run: add --delete to remove them)")


def _gc(args) -> None:
    from tasks import maintenance

    if not args.config and args.older_than is None:
        raise HeirloomError("say what to keep: --config C (repeatable) and/or --older-than DAYS")
    shared = remote_store()
    if shared is not None:
        return _gc_remote(args, shared, maintenance.reachable(args.config) if args.config else None)
    root = store.check_layout(store.store_root())
    keep = maintenance.reachable(args.config) if args.config else None
    chosen = maintenance.collect(root, keep=keep, older_than_days=args.older_than)
    total = sum(size for _, size in chosen)
    for entry, size in chosen:
        print(f"{'remove' if args.delete else 'would remove'}  {entry.family}/{entry.key}  "
              f"{maintenance.human(size)}")
    if args.delete:
        maintenance.remove(root, chosen)
        print(f"removed {len(chosen)} objects, {maintenance.human(total)}")
    else:
        print(f"{len(chosen)} objects, {maintenance.human(total)} (dry run: add --delete to remove them)")


def _runs(args) -> int:
    records = [r for r in store.read_runs() if args.analysis in (None, r.get("analysis"))]
    for record in (records[-args.last:] if args.last > 0 else []):
        print(f"{record['finished']}  {record.get('analysis', '?'):<16} {record['task']:<12} {record['label']:<28} "
              f"{record['key'][:12]}  {record['seconds']:.1f} s")
    return 0


def _diff(args) -> None:
    from tasks.diff import diff_configs, diff_keys

    if args.config:
        if len(args.what) != 1:
            raise HeirloomError("with --config, name one task: heirloom diff Fit --config A --config B")
        params = {k: v for k, v in (("dataset", args.dataset), ("chunk", args.chunk)) if v is not None}
        print("\n".join(diff_configs(args.what[0], args.config, params)))
    elif len(args.what) == 2:
        print("\n".join(diff_keys(*args.what)))
    else:
        raise HeirloomError("give two keys (heirloom diff KEY KEY) or a task and two configs "
                            "(heirloom diff Fit --config A --config B)")


def verify_inputs(config: str | None = None) -> tuple[list[str], int]:
    """Rehash input files from scratch and compare with the cached digests: (the lines to
    print, how many files changed).

    A file whose content changed while its size, mtime, ctime and inode did not is
    reported (``CHANGED``) and its cache entry replaced, so the next run uses the new key.
    """
    from analysis.io.fileid import key_summary
    from tasks.base import manifest

    ledger = manifest()
    if config:
        from analysis.io.datasets import input_files, is_generated
        from analysis.load import load_config

        cfg = load_config(config)
        wanted = [(path, spec.get("tree", cfg.tree), spec.get("format"), spec.get("version"))
                  for name, spec in cfg.datasets.items()
                  if spec["kind"] != "pseudodata" and "files" in spec and not is_generated(cfg, name)
                  for path in input_files(cfg, name)]
    else:
        wanted = [(path, tree, fmt, None) for path, tree, fmt in ledger.cached_paths()]
    lines, changed, unreadable = [], 0, 0
    for path, tree, fmt, version in wanted:
        before = ledger.cached_key(path, tree)
        try:
            now = ledger.identify(path, tree, fmt, rehash=True, version=version).key()
        except InputError as err:
            unreadable += 1
            lines.append(f"MISSING  {path}: {err}")
            continue
        if before is not None and before != now:
            changed += 1
            lines.append(f"CHANGED  {path}: content differs from the cached digest (was {key_summary(before)}, "
                         f"now {key_summary(now)})")
        else:
            lines.append(f"ok       {path}  {key_summary(now)}  {now['size']} bytes")
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
    if args.command == "export" and rest and not any(r.startswith("-") for r in rest):
        args.folders += rest                # `export check --reana FILE FOLDER...`: folders after an option
        rest = []
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
            from tasks.show import show

            print("\n".join(show(args.config)))
        elif args.command == "report":
            from tasks.report import report, summary

            index, data = report(args.config, args.out)
            print(summary(data), file=sys.stderr)
            print(index)
        elif args.command == "diff":
            _diff(args)
        elif args.command == "verify":
            _verify(args)
        elif args.command == "gc":
            _gc(args)
        elif args.command == "trust":
            from analysis.lang.trust import trust

            digest, where = trust(args.file)
            print(f"trusted {args.file} (sha256 {digest[:16]}...) in {where}")
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


def entry() -> None:
    """The ``heirloom`` console script (``heirloom step Skim --of Plot --config
    analysis.yaml --store store``, ``heirloom show --config ...``): :func:`main`. After a
    ``heirloom step``, whose results are committed by then, the exit handlers run and the
    process ends at once: the interpreter's own teardown of a step's modules and arrays
    took 1.3 s per container step on a quiet machine and 5 s on a busy one, for every
    step of an exported workflow."""
    code = main()
    if sys.argv[1:2] == ["step"]:
        import atexit
        import contextlib
        import os

        atexit._run_exitfuncs()             # pools, temporary folders, logging: as a normal exit
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):      # a closed pipe, a closed stream
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
