"""A static HTML report of an analysis, from plain data (no law, no store access): the tasks
of its DAG with their status and provenance, and the files they made (plots, tables, fit
results). ``tasks/report.py`` gathers the data; :func:`analysis.report.page.write_report`
writes ``index.html`` and ``assets/``."""
