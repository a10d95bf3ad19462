"""Batch systems and accelerators: what a task asks of a worker node (``resources:``), and its
rendering for Slurm (sbatch options), HTCondor (submit descriptions) and Dask on either
(dask-jobqueue). Results never depend on any of it: resources stay out of every content key.
"""
