"""Multiplication counts of elimination orders on the ten AD benchmark tasks: heuristics, search and AlphaGrad.

Run ``plastix orders --all`` (or ``--task NAME``; also ``python -m plastix.bench.orders``). For every task the graph of
:mod:`plastix.bench.tasks` is counted with :class:`plastix.ad.CostGraph` under each heuristic of
:mod:`plastix.ad.orders` and under :func:`plastix.ad.orders.search` with a time budget; the table shows search /
min(fwd, rev, markowitz) next to AlphaGrad's ratio of its best order to the best of its own fwd, rev and Markowitz
counts (:data:`ALPHAGRAD`). Our graphs differ from AlphaGrad's in detail (free index maps, the lowering of some ops), so
ratios are compared, not counts. Searched orders are stored in the order cache (:func:`plastix.ad.orders.cache_dir`), so
``plastix.jacve(..., order="search")`` and ``plastix bench ad`` reuse them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated

import typer

import plastix
from plastix.ad import CostGraph, orders

from . import tasks as _tasks
from ._cli import run_command
from ._io import write_json
from .tasks import TaskName

__all__ = ["ALPHAGRAD", "alphagrad_ratio", "command", "format_table", "main", "run", "run_task", "write_json"]

# AlphaGrad's multiplication counts (fwd, rev, Markowitz, AlphaGrad) on its own graphs, from the table in
# ../shared/REFERENCE.md (AlphaGrad, NeurIPS 2024, arXiv 2406.05027; TASKS.md section 11).
ALPHAGRAD: dict[str, tuple[int, int, int, int]] = {
    "RoeFlux_1d": (620, 364, 407, 320),
    "RoeFlux_3d": (1556, 979, 938, 811),
    "RobotArm_6DOF": (397, 301, 288, 231),
    "HumanHeartDipole": (240, 172, 194, 148),
    "PropaneCombustion": (151, 90, 111, 88),
    "BlackScholes_Jacobian": (545, 572, 350, 312),
    "f": (17728, 8859, 12083, 6374),
    "g": (632, 566, 451, 417),
    "Perceptron": (10930, 392, 4796, 389),
    "Encoder": (135010, 4688, 51869, 4656),
}

_BASELINES = ("fwd", "rev", "markowitz")


def alphagrad_ratio(name: str) -> float:
    """AlphaGrad's best count over the best of its fwd, rev and Markowitz counts on task ``name``."""
    fwd, rev, mm, best = ALPHAGRAD[name]
    return best / min(fwd, rev, mm)


def run_task(name: str, *, seconds: float = 60.0, seed: int = 0, max_evals: int | None = None,
             cache: bool = True, bound_seconds: float | None = None) -> dict:
    """Count every heuristic, search ``seconds`` on task ``name`` and bound the optimum from below.

    The lower bound comes from :func:`plastix.ad.orders.optimal` run for ``bound_seconds`` (default
    ``min(10, seconds / 6)``; with ``max_evals`` also at most that many states): no order of the task's graph
    has fewer multiplications.

    Returns:
        A row with keys ``task``, ``vertices``, one count per heuristic name of :data:`plastix.ad.orders.HEURISTICS`
        (``fwd``, ``rev``, ``markowitz``, ...), ``search``, ``search_seconds``, ``ratio`` (search / min(fwd, rev,
        markowitz)), ``alphagrad_ratio``, ``alphagrad_count`` (the largest count at or below AlphaGrad's ratio on
        our graph), ``lower_bound``, ``proven_optimal`` (search == lower bound), ``fingerprint`` and ``order`` (the
        searched vertex ids).
    """
    task = _tasks.get(name)
    args = task.valid_args if task.valid_args is not None else task.args
    cg = CostGraph(plastix.graph(task.fun, task.argnums)(*args))
    row: dict = {"task": name, "vertices": len(cg.vertices)}
    for key, heuristic in orders.HEURISTICS.items():
        row[key] = cg.count(heuristic(cg))
    start = time.perf_counter()
    order, muls = orders.search(cg, seconds=seconds, seed=seed, max_evals=max_evals)
    row["search"] = muls
    row["search_seconds"] = round(time.perf_counter() - start, 3)
    row["ratio"] = muls / max(1, min(row[k] for k in _BASELINES))
    row["alphagrad_ratio"] = alphagrad_ratio(name) if name in ALPHAGRAD else None
    baseline = min(row[k] for k in _BASELINES)
    row["alphagrad_count"] = (math.floor(row["alphagrad_ratio"] * baseline + 1e-9)
                              if row["alphagrad_ratio"] is not None else None)
    bound_seconds = min(10.0, seconds / 6) if bound_seconds is None else bound_seconds
    exact = orders.optimal(cg, seconds=bound_seconds, max_states=max_evals)
    row["lower_bound"] = exact.lower_bound
    row["proven_optimal"] = exact.lower_bound >= muls
    row["fingerprint"] = cg.fingerprint
    row["order"] = order
    if cache:
        orders.store(orders.Order.of(cg, order, "search", {"seconds": row["search_seconds"], "seed": seed}))
    return row


def _width(name: str) -> int:
    return max(8, len(name)) + 2


def _header() -> str:
    return (f"{'task':<22}" + "".join(f"{n:>{_width(n)}}" for n in orders.HEURISTICS)
            + f"{'search':>9}{'s':>6}{'bound':>8}{'ratio':>8}{'AlphaGrad':>11}")


def _verdict(r: dict) -> str:
    """``<=`` (at or below AlphaGrad's ratio), ``unreachable`` (the lower bound is above the count AlphaGrad's
    ratio needs) or ``>``."""
    ag, needed = r.get("alphagrad_ratio"), r.get("alphagrad_count")
    if ag is None:
        return ""
    if r["ratio"] <= ag:
        return "  <="
    if needed is not None and r.get("lower_bound", 0) > needed:
        return f"  > (needs <= {needed}: unreachable, optimum >= {r['lower_bound']})"
    return f"  > (needs <= {needed})" if needed is not None else "  >"


def _line(r: dict) -> str:
    ag = r.get("alphagrad_ratio")
    bound = f"{r['lower_bound']}{'*' if r.get('proven_optimal') else ''}" if "lower_bound" in r else "-"
    return (f"{r['task']:<22}" + "".join(f"{r[n]:>{_width(n)}}" for n in orders.HEURISTICS)
            + f"{r['search']:>9}{r['search_seconds']:>6.0f}{bound:>8}{r['ratio']:>8.3f}"
            + f"{'-' if ag is None else f'{ag:.3f}':>11}{_verdict(r)}")


def format_table(rows: list[dict]) -> str:
    """The rows as a text table (one line per task)."""
    return "\n".join([_header()] + [_line(r) for r in rows])


def run(names: Iterable[str] | None = None, *, seconds: float = 60.0, seed: int = 0, max_evals: int | None = None,
        cache: bool = True, echo: Callable[[str], None] = print) -> list[dict]:
    """:func:`run_task` for every task in ``names`` (default: all), echoing each row as it finishes.

    Returns:
        The rows of :func:`run_task`.
    """
    names = list(_tasks.names() if names is None else names)
    for n in names:
        _tasks.get(n)  # KeyError naming the valid tasks
    echo(f"multiplications per elimination order; search {seconds:g} s per task, seed {seed}; bound = proven lower "
         f"bound on every order (* = search is optimal); ratio = search / min(fwd, rev, markowitz), AlphaGrad = its "
         f"best / min(its fwd, rev, Markowitz) (REFERENCE.md)")
    echo(_header())
    rows = []
    for n in names:
        rows.append(run_task(n, seconds=seconds, seed=seed, max_evals=max_evals, cache=cache))
        echo(_line(rows[-1]))
    met = sum(r["ratio"] <= r["alphagrad_ratio"] for r in rows if r["alphagrad_ratio"] is not None)
    known = sum(r["alphagrad_ratio"] is not None for r in rows)
    unreachable = sum("unreachable" in _verdict(r) for r in rows)
    echo(f"\nsearch at or below AlphaGrad's ratio on {met} of {known} tasks; unreachable on {unreachable} more (no "
         f"order of our graph has the count that ratio needs)")
    if cache:
        echo(f"searched orders cached in {orders.cache_dir()}")
    return rows


def command(
    task: Annotated[list[TaskName] | None, typer.Option(help="Task to search (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every task of plastix.bench.tasks.")] = False,
    seconds: Annotated[float, typer.Option(min=0, help="Search budget per task, seconds.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of the search.")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", dir_okay=False,
                                                   help="Write the rows as JSON here.")] = None,
    cache: Annotated[bool, typer.Option(help="Store the searched orders in the order cache.")] = True,
) -> None:
    """Multiplications of fwd, rev, Markowitz, other heuristics and a searched elimination order per task."""
    if not task and not all_:
        raise typer.BadParameter("give --task NAME (repeatable) or --all")
    rows = run(None if all_ else [t.value for t in task], seconds=seconds, seed=seed, cache=cache, echo=typer.echo)
    if json_path is not None:
        write_json(rows, json_path)
        typer.echo(f"wrote {json_path}")


def main(argv: list[str] | None = None) -> None:
    """``python -m plastix.bench.orders [options]``: the same as ``plastix orders [options]``."""
    run_command(command, argv, "python -m plastix.bench.orders")


if __name__ == "__main__":
    main()
