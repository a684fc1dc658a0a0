"""Klaxon's benchmarks: each script beside it runs one, and `bench.measure` holds what
they share.

The scripts are run as files (``python bench/intake.py``); each puts the repository root on
the import path so that ``bench.measure`` and its siblings import as part of this package.
"""
