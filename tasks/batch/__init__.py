"""Batch jobs through law's remote workflows: ``--workflow slurm|htcondor`` (docs/slurm.md)."""
