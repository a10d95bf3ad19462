"""Exporters: the live law DAG of a config written as yadage, Snakemake and REANA specs.

``heirloom export yadage|snakemake|reana --config C`` walks the same dependency tree that
``law run`` executes (:mod:`tasks.export.dag`), bundles the config with what it reads
(:mod:`tasks.export.bundle`) and writes the workflow files. Every step runs
``heirloom step <Task> --config ... --store ...``, i.e. ``law run`` of that one task, so an
exported workflow and ``law run`` compute the same content addresses.
"""
