"""The ``plastix`` command line: ``plastix train``, ``plastix bench ad``, ``plastix bench online`` (``plastix --help``).

Usage errors (an unknown option, a value out of range, an unknown choice) exit with status 2 and print a
single ``Error: ...`` line on stderr; invalid combinations found while training exit with status 2 as well.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

# The base class of click's usage errors, whether typer vendors click (typer >= 0.2x) or depends on it.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

__all__ = ["app"]


class _OneLineErrors(TyperGroup):
    """A command group whose usage errors are one line on stderr, never a traceback or a boxed panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `plastix`: show the help, it is not an error
                typer.echo(e.format_message())
                sys.exit(0)
            message = " ".join(e.format_message().split())
            typer.echo(f"Error: {message}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="plastix",
    help="plastix: sparse vertex-elimination autodiff and gradient-based synaptic plasticity for JAX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Dataset(StrEnum):
    digits = "digits"
    randman = "randman"
    shd = "shd"


class Encoding(StrEnum):
    rate = "rate"
    latency = "latency"


class Model(StrEnum):
    lif = "lif"
    alif = "alif"
    rlif = "rlif"
    sigma_delta = "sigma-delta"
    dendritic = "dendritic"


class Mode(StrEnum):
    diagonal = "diagonal"
    eprop = "eprop"
    rtrl = "rtrl"
    bptt = "bptt"


@app.callback()
def _main() -> None:
    """plastix: sparse vertex-elimination autodiff and gradient-based synaptic plasticity for JAX."""


@app.command()
def train(
    dataset: Annotated[Dataset, typer.Option(help="Dataset: digits (bundled), randman (generated) or shd "
                                                  "(HDF5 files in --data-path).")] = Dataset.digits,
    data_path: Annotated[Path | None, typer.Option(help="SHD/SSC: a directory with shd_train.h5 and shd_test.h5 "
                                                        "(or ssc_*), or one .h5 file to split.")] = None,
    encoding: Annotated[Encoding, typer.Option(help="Spike encoding of the digits.")] = Encoding.rate,
    steps: Annotated[int | None, typer.Option(min=1, help="Time steps per sample [default: digits 20, "
                                                          "randman 50, shd 100].")] = None,
    duration: Annotated[float, typer.Option(help="SHD/SSC: seconds binned into the time steps.")] = 1.4,
    manifold_dim: Annotated[int, typer.Option(min=1, help="Randman: intrinsic dimension of each manifold.")] = 20,
    samples_per_class: Annotated[int, typer.Option(min=1, help="Randman: samples per class.")] = 100,
    model: Annotated[Model, typer.Option(help="Neuron model of the hidden layers.")] = Model.lif,
    hidden: Annotated[int, typer.Option(min=1, help="Neurons per hidden layer.")] = 256,
    layers: Annotated[int, typer.Option(min=1, help="Number of hidden layers.")] = 1,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training set.")] = 15,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per optimizer step (all devices together).")] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate (positive).")] = 2e-3,
    seed: Annotated[int, typer.Option(help="Seed of the data split, encoding, initialisation and shuffling.")] = 0,
    mode: Annotated[Mode, typer.Option(help="Gradient computation: online eligibility traces (diagonal, eprop, "
                                            "rtrl) or backprop through time (bptt).")] = Mode.diagonal,
    out: Annotated[Path | None, typer.Option(file_okay=False, help="Write checkpoint.npz (every epoch), "
                                                                   "results.json and PNG plots here.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")] = False,
    distributed: Annotated[bool, typer.Option(help="Call jax.distributed.initialize() first (one process per "
                                                   "host; see docs/training.md).")] = False,
) -> None:
    """Train a spiking network with online plasticity (or BPTT) and report its test accuracy."""
    from .data import DataError
    from .train import ConfigError, TrainConfig, TrainingDiverged
    from .train import train as run

    config = TrainConfig(dataset=dataset.value, data_path=None if data_path is None else str(data_path),
                         encoding=encoding.value, steps=steps, duration=duration, randman_dim=manifold_dim,
                         randman_samples=samples_per_class, model=model.value, hidden=hidden, layers=layers,
                         epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, mode=mode.value)
    try:
        config.check()
        run(config, out=out, resume=resume, progress=None, distributed=distributed)
    except (ConfigError, DataError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e)) from None
    except TrainingDiverged as e:
        typer.echo(f"Error: {e}", err=True)
        raise typer.Exit(1) from None


bench = typer.Typer(
    name="bench",
    help="Benchmarks measured side by side in one process.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(bench, name="bench")


def _task_names() -> list[str]:
    from .bench.tasks import names

    return names()


TaskName = StrEnum("TaskName", {name: name for name in _task_names()})


@bench.command("ad")
def bench_ad(
    task: Annotated[list[TaskName] | None, typer.Option(help="Task to measure (repeatable; default: all).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Examples per vmapped call.")] = 512,
    repeats: Annotated[int, typer.Option(min=1, help="Interleaved timed calls per method.")] = 100,
    json: Annotated[Path | None, typer.Option(dir_okay=False, help="Write the rows as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(dir_okay=False, help="Write a PNG of the ratios here.")] = None,
    asdex: Annotated[bool, typer.Option(help="Include asdex.jacobian when the package is installed.")] = True,
) -> None:
    """Jacobian runtime of plastix.jacve (fwd, rev, best order) vs jax.jacfwd, jax.jacrev and asdex."""
    from .bench import ad

    include = None if asdex else False
    rows = ad.run([t.value for t in task] if task else None, batch=batch, repeats=repeats,
                  include_asdex=include, echo=typer.echo)
    if json is not None:
        ad.write_json(rows, json)
        typer.echo(f"wrote {json}")
    if plot is not None:
        ad.plot(rows, plot)
        typer.echo(f"wrote {plot}")


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{name} must be a comma-separated list of positive integers, got {text!r}")
    return values


@bench.command("online")
def bench_online(
    sizes: Annotated[str, typer.Option(help="Hidden sizes n, comma-separated.")] = "128,512",
    steps: Annotated[str, typer.Option(help="Sequence lengths T, comma-separated.")] = "100,1000,4000",
    methods: Annotated[str, typer.Option(help="Comma-separated, from: bptt, diagonal, eprop, diagonal-stream, "
                                              "eprop-stream (fed in segments, no sequence in memory), "
                                              "braintrace-d_rtrl, braintrace-es_d_rtrl.")] = (
        "bptt,diagonal,eprop,diagonal-stream,braintrace-d_rtrl,braintrace-es_d_rtrl"),
    batch: Annotated[int, typer.Option(min=1, help="Sequences per training step.")] = 32,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds allowed per configuration (its own process).")] = 300,
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per configuration (fewer past 20 s).")] = 5,
    network: Annotated[str, typer.Option(help="recurrent (LIF with recurrent weights, BrainTrace's model) or "
                                              "feedforward.")] = "recurrent",
    all_: Annotated[bool, typer.Option("--all", help="Also run BrainTrace D_RTRL at n>=512, T>=1000.")] = False,
    cosine: Annotated[bool, typer.Option(help="Gradient cosine to BPTT at the smallest n and T.")] = True,
    braintrace_python: Annotated[str | None, typer.Option(help="Python interpreter with braintrace installed "
                                                               "(default: this one).")] = None,
    json: Annotated[Path | None, typer.Option(dir_okay=False, help="Write the rows as JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(dir_okay=False, help="Write a PNG of time and memory vs T.")] = None,
) -> None:
    """Seconds and peak memory of one training step (a gradient over T steps): plastix vs BPTT vs BrainTrace."""
    from .bench import online

    size_list, step_list = _int_list(sizes, "--sizes"), _int_list(steps, "--steps")
    method_list = [m.strip().lower() for m in methods.split(",") if m.strip()]
    unknown = [m for m in method_list if m not in online.METHODS]
    if unknown or not method_list:
        raise typer.BadParameter(f"unknown method(s) {', '.join(map(repr, unknown)) or repr(methods)} for --methods; "
                                 f"choose from {', '.join(online.METHODS)}")
    if network not in online.NETWORKS:
        raise typer.BadParameter(f"unknown network {network!r} for --network; choose from {', '.join(online.NETWORKS)}")
    rows = online.run(size_list, step_list, method_list, batch=batch, timeout=timeout, repeats=repeats,
                      network=network, include_hopeless=all_, cosine=cosine, braintrace_python=braintrace_python,
                      echo=typer.echo)
    typer.echo("")
    typer.echo("seconds per update, peak RSS / XLA temp MB:")
    typer.echo(online.format_table(rows))
    typer.echo("")
    typer.echo(online.format_ratios(online.ratios(rows)))
    if json is not None:
        online.write_json(rows, json)
        typer.echo(f"wrote {json}")
    if plot is not None:
        online.plot(rows, plot)
        typer.echo(f"wrote {plot}")


@app.command("orders")
def orders_cmd(
    task: Annotated[list[TaskName] | None, typer.Option(help="Task to search (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every task of plastix.bench.tasks.")] = False,
    seconds: Annotated[float, typer.Option(min=0, help="Search budget per task, seconds.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of the search.")] = 0,
    json: Annotated[Path | None, typer.Option(dir_okay=False, help="Write the rows as JSON here.")] = None,
    cache: Annotated[bool, typer.Option(help="Store the searched orders in the order cache.")] = True,
) -> None:
    """Multiplications of fwd, rev, Markowitz, other heuristics and a searched elimination order per task."""
    from .bench import orders

    if not task and not all_:
        raise typer.BadParameter("give --task NAME (repeatable) or --all")
    rows = orders.run(None if all_ else [t.value for t in task], seconds=seconds, seed=seed, cache=cache,
                      echo=typer.echo)
    if json is not None:
        orders.write_json(rows, json)
        typer.echo(f"wrote {json}")


def main() -> None:  # pragma: no cover - convenience for `python -m plastix.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
