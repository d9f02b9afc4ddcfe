"""Jacobian runtime on the ten AD benchmark tasks: plastix.jacve (fwd, rev, best order) vs JAX and asdex.

Run ``plastix bench ad`` or ``python -m plastix.bench.ad`` (same options). For every task of
:mod:`plastix.bench.tasks`, each method's Jacobian function is vmapped over a batch (default 512, as in the
literature) and jitted; the task's example inputs (``valid_args`` where the example gives NaNs) are broadcast
to the batch with a small per-example relative perturbation, so examples differ (exact zeros stay zero and
keep the task's quirks). Each method is called once (its first-call time: trace + compile + run), then all
are timed interleaved round-robin in one process (each round in a fresh random order, see
:func:`shuffled_medians`) and the median per method is reported, with its ratio to the best JAX time
(``min(jax-jacfwd, jax-jacrev)``).

Methods: ``plastix-fwd``, ``plastix-rev``, ``plastix-best`` (the candidate order with the fewest
multiplications by :func:`plastix.count_muls`; within 5 % of the fewest, the fewest contractions, see
:func:`best_order`), ``jax-jacfwd``, ``jax-jacrev`` and ``asdex`` (sparsity
detection + colouring, when the optional package ``asdex`` is installed; its first-call time includes the
detection and colouring). Candidate orders come from :data:`ORDER_SOURCES` (name -> function of
``(fun, argnums, args)`` returning an order): fwd, rev, markowitz and search (the order cache of
``plastix orders``, or a search of :data:`SEARCH_SECONDS`); add an entry, or pass ``order_sources=`` to
:func:`run`, to let another order source compete for ``plastix-best``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated

import jax
import numpy as np
import typer

import plastix

from . import tasks as _tasks
from ._cli import run_command
from ._io import write_json
from ._timing import first_call, interleaved_medians
from .tasks import TaskName

__all__ = ["METHODS", "ORDER_SOURCES", "asdex_status", "batch_args", "best_order", "candidate_orders",
           "command", "main", "plot", "run", "run_task", "shuffled_medians", "write_json"]

METHODS = ("plastix-fwd", "plastix-rev", "plastix-best", "jax-jacfwd", "jax-jacrev", "asdex")
JAX_METHODS = ("jax-jacfwd", "jax-jacrev")

Order = str | Sequence[int] | plastix.ad.orders.Order  # an order plastix.jacve takes
OrderSource = Callable[[Callable, tuple, tuple], Order]
# name -> order source; the sources compete for plastix-best (see best_order).
SEARCH_SECONDS = 5.0  # search budget of the "search" order source when the order cache has none for a task


def _searched(fun: Callable, argnums: tuple, args: tuple) -> Order:
    """The cached searched order of the task's graph (a search of :data:`SEARCH_SECONDS` when none is cached)."""
    return plastix.ad.orders.cached_search(plastix.graph(fun, argnums)(*args), seconds=SEARCH_SECONDS)


ORDER_SOURCES: dict[str, OrderSource] = {
    "fwd": lambda fun, argnums, args: "fwd",
    "rev": lambda fun, argnums, args: "rev",
    "markowitz": lambda fun, argnums, args: "markowitz",
    "search": _searched,
}

MULS_TOLERANCE = 0.05  # orders within this fraction of the fewest multiplications compete on contractions
PERTURBATION = 1e-2  # relative size of the per-example perturbation of the example inputs


def asdex_status() -> tuple[bool, str]:
    """Whether ``asdex`` can be used, and a one-line reason when it cannot."""
    try:
        import asdex  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return False, f"asdex not installed ({type(e).__name__}: {e}); `pip install asdex` to include it"
    return True, ""


def candidate_orders(fun: Callable, argnums: tuple, args: tuple,
                     sources: Mapping[str, OrderSource] | None = None) -> dict[str, Order]:
    """Candidate elimination orders by name, one per order source.

    Args:
        fun: the task's function.
        argnums: the differentiated positional arguments.
        args: one example's arguments (no batch axis).
        sources: name -> ``source(fun, argnums, args) -> order`` (default :data:`ORDER_SOURCES`).

    Returns:
        ``{name: order}`` in the order of ``sources``, each order one :func:`plastix.jacve` accepts.
    """
    sources = ORDER_SOURCES if sources is None else sources
    return {name: source(fun, argnums, args) for name, source in sources.items()}


def best_order(fun: Callable, argnums: tuple, args: tuple, orders: Mapping[str, Order]) -> tuple[str, dict]:
    """The name of the winning order, and the multiplication count of every order.

    The winner has the fewest multiplications, except that orders within :data:`MULS_TOLERANCE` of the fewest
    compete on contractions first (:meth:`plastix.ad.CostGraph.contractions`: a few multiplications fewer do
    not pay for an extra small ``dot_general``, which XLA runs per example under ``vmap`` on CPU).

    Args:
        fun: the task's function.
        argnums: the differentiated positional arguments.
        args: one example's arguments (no batch axis).
        orders: candidate orders by name (e.g. from :func:`candidate_orders`).

    Returns:
        ``(name, muls)``: the winning name (ties: fewer multiplications, then the first listed) and ``{name:
        multiplications per example}`` (equal to :func:`plastix.count_muls`).

    Raises:
        ValueError: an order that is invalid for the task's graph (see :func:`plastix.ad.resolve_order`).
    """
    graph = plastix.graph(fun, argnums)(*args)
    cost = plastix.ad.CostGraph(graph)
    resolved = {name: plastix.ad.resolve_order(graph, order) for name, order in orders.items()}
    muls = {name: cost.count(order) for name, order in resolved.items()}
    near = [name for name in orders if muls[name] <= (1 + MULS_TOLERANCE) * min(muls.values())]
    return min(near, key=lambda name: (cost.contractions(resolved[name]), muls[name])), muls


def batch_args(args: tuple, batch: int, seed: int = 0) -> tuple:
    """``args`` broadcast to a leading batch axis, each entry scaled by ``1 + PERTURBATION * u``, u ~ U(-1, 1).

    Args:
        args: one example's arguments (arrays or scalars).
        batch: size of the leading batch axis.
        seed: seed of the perturbations.

    Returns:
        A tuple of JAX arrays of shape ``(batch, *np.shape(a))`` in each argument's dtype.
    """
    rng = np.random.default_rng(seed)
    out = []
    for a in args:
        a = np.asarray(a)
        u = rng.uniform(-1.0, 1.0, (batch, *a.shape))
        out.append(jax.numpy.asarray(a[None] * (1.0 + PERTURBATION * u), dtype=a.dtype))
    return tuple(out)


def shuffled_medians(fns: Mapping[str, Callable], args: tuple, repeats: int, seed: int = 0) -> dict[str, float]:
    """Median seconds per call of each compiled function: ``repeats`` round-robin rounds, each calling every
    function once in a fresh seeded random order.

    A fixed order biases the times: a call right after a heavy one (e.g. jax-jacfwd on Perceptron, 20 ms) was
    measured up to ~1.8x slower on 2 CPU cores, so whichever method follows it in the fixed order would lose.

    Args:
        fns: compiled functions by name, each called as ``fn(*args)``.
        args: the arguments of every call.
        repeats: number of rounds (calls per function).
        seed: seed of the per-round orders.

    Returns:
        ``{name: median seconds per call}``.
    """
    rng = np.random.default_rng(seed)
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name, t in interleaved_medians({names[k]: fns[names[k]] for k in rng.permutation(len(names))},
                                           args, 1).items():
            times[name].append(t)
    return {name: float(np.median(t)) for name, t in times.items()}


def _max_abs_diff(got, want) -> float:
    """Largest |got - want| over finite entries of both trees; NaN when the layouts differ."""
    g, w = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    if len(g) != len(w) or any(np.shape(a) != np.shape(b) for a, b in zip(g, w)):
        return math.nan
    worst = 0.0
    for a, b in zip(g, w):
        d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        d = d[np.isfinite(d)]
        if d.size:
            worst = max(worst, float(d.max()))
    return worst


def _nonfinite_fraction(tree) -> float:
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
    total = sum(x.size for x in leaves)
    return sum(int((~np.isfinite(x)).sum()) for x in leaves) / max(total, 1)


def _asdex_jacobian(fun, argnums, args):
    import warnings

    import asdex

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return asdex.jacobian(fun, *args, argnums=argnums, output_format="dense")


def run_task(name: str, *, batch: int = 512, repeats: int = 100, include_asdex: bool = True,
             order_sources: Mapping[str, OrderSource] | None = None, seed: int = 0,
             echo: Callable[[str], None] = print) -> list[dict]:
    """Measure one task; prints its table and returns one row per method (see :func:`run`).

    A method that fails on the task (in tracing, compiling or its first call) is reported in its row's
    ``error``, not raised.

    Args:
        name: a task name of :mod:`plastix.bench.tasks`.
        batch: vmap batch size.
        repeats: timed round-robin rounds (see :func:`shuffled_medians`).
        include_asdex: also measure ``asdex`` (must be installed).
        order_sources: candidate order sources for ``plastix-best`` (default :data:`ORDER_SOURCES`).
        seed: seed of the input perturbations and the round orders.
        echo: called with each line of the table.

    Returns:
        One row dict per method, with the keys described in :func:`run`.

    Raises:
        KeyError: unknown task ``name`` (the message lists the valid ones).
    """
    task = _tasks.get(name)
    args = task.valid_args if task.valid_args is not None else task.args
    fun, argnums = task.fun, task.argnums
    xs = batch_args(args, batch, seed)

    orders = candidate_orders(fun, argnums, args, order_sources)
    best_name, muls = best_order(fun, argnums, args, orders)

    makers: dict[str, Callable[[], Callable]] = {
        "plastix-fwd": lambda: plastix.jacve(fun, argnums, order="fwd"),
        "plastix-rev": lambda: plastix.jacve(fun, argnums, order="rev"),
        "plastix-best": lambda: plastix.jacve(fun, argnums, order=orders[best_name]),
        "jax-jacfwd": lambda: jax.jacfwd(fun, argnums),
        "jax-jacrev": lambda: jax.jacrev(fun, argnums),
    }
    if include_asdex:
        makers["asdex"] = lambda: _asdex_jacobian(fun, argnums, args)
    row_muls = {"plastix-fwd": muls.get("fwd"), "plastix-rev": muls.get("rev"), "plastix-best": muls[best_name]}

    # Warm JAX's caches for the primal function itself, so no method pays for them in its first call.
    jax.block_until_ready(jax.jit(jax.vmap(fun))(*xs))

    fns, firsts, outs, errors = {}, {}, {}, {}
    for method, make in makers.items():
        try:
            start = time.perf_counter()
            fn = jax.jit(jax.vmap(make()))  # asdex detects sparsity and colours here
            setup = time.perf_counter() - start
            seconds, outs[method] = first_call(fn, *xs)
            firsts[method], fns[method] = setup + seconds, fn
        except Exception as e:  # a method that cannot handle the task is reported, not fatal
            errors[method] = " ".join(f"{type(e).__name__}: {e}".split())[:160]
    if fns:
        shuffled_medians(fns, xs, 1, seed + 1)  # one untimed round: every method warm before timing
    medians = shuffled_medians(fns, xs, repeats, seed) if fns else {}
    jax_times = [medians[m] for m in JAX_METHODS if m in medians]
    best_jax = min(jax_times) if jax_times else math.nan

    ref = outs.get("jax-jacrev")
    echo(f"\n{name}: batch {batch}, {repeats} shuffled round-robin repeats; best order {best_name!r} "
         f"(muls per example: {', '.join(f'{k} {v}' for k, v in muls.items())})"
         + ("; valid_args (example input has NaNs)" if task.valid_args is not None else ""))
    if ref is not None and _nonfinite_fraction(ref) > 0:
        echo(f"  note: {_nonfinite_fraction(ref):.1%} of jax-jacrev's Jacobian entries are not finite")
    echo(f"  {'method':<14}{'median ms':>11}{'vs best JAX':>13}{'first call s':>14}{'muls':>9}"
         f"{'max|d| vs jacrev':>18}")
    rows = []
    for method in makers:
        if method in errors:
            echo(f"  {method:<14}  failed: {errors[method]}")
            rows.append({"task": name, "method": method, "median_s": None, "first_call_s": None,
                         "muls": row_muls.get(method), "ratio": None, "batch": batch, "error": errors[method]})
            continue
        med = medians[method]
        ratio = med / best_jax
        diff = _max_abs_diff(outs[method], ref) if ref is not None else math.nan
        m = row_muls.get(method)
        echo(f"  {method:<14}{med * 1e3:>11.3f}{ratio:>13.2f}{firsts[method]:>14.2f}"
             f"{'-' if m is None else m:>9}{diff:>18.1e}")
        row = {"task": name, "method": method, "median_s": med, "first_call_s": firsts[method], "muls": m,
               "ratio": ratio, "batch": batch}
        if method == "plastix-best":
            row["order"] = best_name
        rows.append(row)
    return rows


def run(names: Iterable[str] | None = None, *, batch: int = 512, repeats: int = 100, include_asdex: bool | None = None,
        order_sources: Mapping[str, OrderSource] | None = None, seed: int = 0,
        echo: Callable[[str], None] = print) -> list[dict]:
    """Measure every task in ``names`` (default: all) and print a table per task.

    Args:
        names: task names of :mod:`plastix.bench.tasks` (default: all, in their order).
        batch: vmap batch size.
        repeats: timed round-robin rounds per task.
        include_asdex: measure ``asdex`` (default: when it is installed).
        order_sources: candidate order sources for ``plastix-best`` (default :data:`ORDER_SOURCES`).
        seed: seed of the input perturbations and the round orders.
        echo: called with each line of output.

    Returns:
        Rows with keys ``task``, ``method``, ``median_s``, ``first_call_s``, ``muls`` (per example; ``None``
        for JAX and asdex), plus ``ratio`` (median over the best JAX median), ``batch``, ``order`` (on
        ``plastix-best``: the winning order source) and ``error`` (on a method that failed; times ``None``).

    Raises:
        KeyError: an unknown task name (checked before anything is measured).

    Example:
        >>> rows = run(["Perceptron"], batch=64, repeats=10)
    """
    names = list(_tasks.names() if names is None else names)
    for n in names:
        _tasks.get(n)  # KeyError naming the valid tasks
    if include_asdex is None:
        include_asdex, why = asdex_status()
        if not include_asdex:
            echo(f"asdex skipped: {why}")
    elif not include_asdex:
        echo("asdex skipped: disabled (--no-asdex)")
    echo(f"JAX {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s)), "
         f"batch {batch}, {repeats} repeats")
    jax.block_until_ready(jax.jit(lambda x: x + 1)(np.float32(0)))  # JAX start-up, charged to nobody
    rows = []
    for n in names:
        rows += run_task(n, batch=batch, repeats=repeats, include_asdex=include_asdex,
                         order_sources=order_sources, seed=seed, echo=echo)
    _summary(rows, echo)
    return rows


def _summary(rows: list[dict], echo: Callable[[str], None]) -> None:
    by = {(r["task"], r["method"]): r for r in rows}
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    echo("\nSummary: plastix-best vs the best JAX median, and first-call time vs jax-jacrev")
    echo(f"  {'task':<24}{'order':>10}{'best/JAX':>10}{'first/jacrev':>14}")
    ratios = []
    for t in tasks:
        best, rev = by.get((t, "plastix-best")), by.get((t, "jax-jacrev"))
        if not best or best["median_s"] is None or not rev or rev["median_s"] is None:
            echo(f"  {t:<24}{'-':>10}{'n/a':>10}{'n/a':>14}")
            continue
        ratios.append(best["ratio"])
        echo(f"  {t:<24}{best['order']:>10}{best['ratio']:>10.2f}{best['first_call_s'] / rev['first_call_s']:>14.2f}")
    if ratios:
        echo(f"  {'median':<24}{'':>10}{float(np.median(ratios)):>10.2f}")


def plot(rows: list[dict], path: str | Path) -> None:
    """Grouped bars: each method's median over the best JAX median, per task, on a log axis.

    Args:
        rows: the rows returned by :func:`run`; failed methods (``ratio`` ``None``) are left out.
        path: the output image file (format from its suffix; parent directories are created).

    Returns:
        None; writes the figure to ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = [m for m in METHODS if any(r["method"] == m and r["ratio"] is not None for r in rows)]
    ratio = {(r["task"], r["method"]): r["ratio"] for r in rows}
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(tasks) + 2), 4.5))
    x = np.arange(len(tasks))
    for k, m in enumerate(methods):
        ys = np.array([ratio.get((t, m)) or np.nan for t in tasks])
        # bars grow from 1 (the best JAX time): up when slower, down when faster
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, ys - 1.0, width, bottom=1.0, label=m)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x, tasks, rotation=30, ha="right")
    ax.set_ylabel("median time / best JAX median (log)")
    batch = rows[0].get("batch") if rows else None
    ax.set_title(f"Jacobian time / best of jax.jacfwd, jax.jacrev (vmap batch {batch})")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def command(
    task: Annotated[list[TaskName] | None, typer.Option(help="Task to measure (repeatable; default: all).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Examples per vmapped call.")] = 512,
    repeats: Annotated[int, typer.Option(min=1, help="Interleaved timed calls per method.")] = 100,
    json_path: Annotated[Path | None, typer.Option("--json", dir_okay=False,
                                                   help="Write the rows as JSON here.")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", dir_okay=False,
                                                   help="Write a PNG of the ratios here.")] = None,
    asdex: Annotated[bool, typer.Option(help="Include asdex.jacobian when the package is installed.")] = True,
) -> None:
    """Jacobian runtime of plastix.jacve (fwd, rev, best order) vs jax.jacfwd, jax.jacrev and asdex."""
    rows = run([t.value for t in task] if task else None, batch=batch, repeats=repeats,
               include_asdex=None if asdex else False, echo=typer.echo)
    if json_path is not None:
        write_json(rows, json_path)
        typer.echo(f"wrote {json_path}")
    if plot_path is not None:
        plot(rows, plot_path)
        typer.echo(f"wrote {plot_path}")


def main(argv: list[str] | None = None) -> None:
    """``python -m plastix.bench.ad [options]``: the same as ``plastix bench ad [options]``."""
    run_command(command, argv, "python -m plastix.bench.ad")


if __name__ == "__main__":
    main()
