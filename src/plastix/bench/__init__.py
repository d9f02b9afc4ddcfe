"""Benchmarks: scripts that print ratios measured side by side in one run.

Each of :mod:`plastix.bench.ad`, :mod:`plastix.bench.online` and :mod:`plastix.bench.orders` has its command as a
typer-annotated function ``command`` and runs alone as ``python -m plastix.bench.<name>``; :mod:`plastix.cli`
mounts the same functions and takes its one-line usage errors from here (:class:`OneLineErrors`).
"""

from ._cli import OneLineErrors, int_list, main_one_line, run_command

__all__ = ["OneLineErrors", "int_list", "main_one_line", "run_command"]
