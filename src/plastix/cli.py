"""The ``plastix`` command line: ``plastix train``, ``plastix bench ad|online|spellings`` and ``plastix orders`` (see
``plastix --help``).

Usage errors (an unknown option, a value out of range, an unknown choice) exit with status 2 and print a
single ``Error: ...`` line on stderr; invalid combinations found while training exit with status 2 as well.
The choices of ``plastix train`` come from the registries (:data:`plastix.data.DATASETS`,
:data:`plastix.neurons.NEURONS`, :data:`plastix.train.MODES`), and the benchmark commands are the
``command`` functions of :mod:`plastix.bench.ad`, :mod:`plastix.bench.online` and :mod:`plastix.bench.orders`
(each also runs alone as ``python -m plastix.bench.<name>``). This module imports those; nothing imports it.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .bench import OneLineErrors
from .bench import ad as bench_ad
from .bench import online as bench_online
from .bench import orders as bench_orders
from .bench import spellings as bench_spellings
from .data import DATASETS, ENCODINGS
from .neurons import NEURONS
from .train import MODES, ConfigError, TrainConfig, TrainingDiverged

__all__ = ["app"]

app = typer.Typer(
    cls=OneLineErrors,
    name="plastix",
    help="plastix: sparse vertex-elimination autodiff and gradient-based synaptic plasticity for JAX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Dataset = StrEnum("Dataset", {name.replace("-", "_"): name for name in DATASETS})
Encoding = StrEnum("Encoding", {name: name for name in ENCODINGS})
Model = StrEnum("Model", {name.replace("-", "_"): name for name in NEURONS})
Mode = StrEnum("Mode", {name.replace("-", "_"): name for name in MODES})


def _per_dataset(setting: str) -> str:
    """A setting's default per dataset (:meth:`TrainConfig.resolved`): ``"lif; mnist1d rlif"`` (the most common
    value, then the datasets that differ from it)."""
    values = {name: getattr(TrainConfig(dataset=name).resolved(), setting) for name in DATASETS}
    if len(set(values.values())) == len(values) > 1:
        return ", ".join(f"{name} {value}" for name, value in values.items())
    common = Counter(values.values()).most_common(1)[0][0]
    return "; ".join([str(common), *(f"{name} {value}" for name, value in values.items() if value != common)])


def _default(setting: str, text: str) -> str:
    return f"{text} [default: {_per_dataset(setting)}]"


_DATASET_HELP = "Dataset: " + "; ".join(f"{name}: {spec.description}" for name, spec in DATASETS.items()) + "."
_MODEL_HELP = "Neuron model of the hidden layers: " + "; ".join(f"{name}: {m.description}"
                                                                 for name, m in NEURONS.items()) + "."


@app.callback()
def _main() -> None:
    """plastix: sparse vertex-elimination autodiff and gradient-based synaptic plasticity for JAX."""


@app.command()
def train(
    dataset: Annotated[Dataset, typer.Option(help=_DATASET_HELP)] = Dataset.digits,
    data_path: Annotated[Path | None, typer.Option(help="SHD/SSC: a directory with shd_train.h5 and shd_test.h5 "
                                                        "(or ssc_*), or one .h5 file to split.")] = None,
    encoding: Annotated[Encoding, typer.Option(help="Spike encoding of the digits.")] = Encoding.rate,
    steps: Annotated[int | None, typer.Option(min=1, help=_default("steps", "Time steps per sample."))] = None,
    duration: Annotated[float, typer.Option(help="SHD/SSC: seconds binned into the time steps.")] = 1.4,
    manifold_dim: Annotated[int, typer.Option(min=1, help="Randman: intrinsic dimension of each manifold.")] = 20,
    samples_per_class: Annotated[int, typer.Option(min=1, help="Randman: samples per class.")] = 100,
    model: Annotated[Model | None, typer.Option(help=_default("model", _MODEL_HELP), show_default=False)] = None,
    hidden: Annotated[int | None, typer.Option(min=1, help=_default("hidden", "Neurons per hidden layer."))] = None,
    layers: Annotated[int | None, typer.Option(min=1, help=_default("layers", "Number of hidden layers."))] = None,
    beta: Annotated[float | None, typer.Option(min=0.0, max=1.0, help=_default(
        "beta", "Membrane decay per step of the hidden neurons (the LIF-like models)."))] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help=_default("epochs", "Passes over the training set."))] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help=_default(
        "batch_size", "Samples per optimizer step (all devices together)."))] = None,
    lr: Annotated[float | None, typer.Option(help=_default("lr", "Adam learning rate (positive)."))] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data split, encoding, initialisation and shuffling.")] = 0,
    mode: Annotated[Mode, typer.Option(help="Gradient computation: online eligibility traces (diagonal, eprop, "
                                            "rtrl) or backprop through time (bptt).")] = Mode.diagonal,
    out: Annotated[Path | None, typer.Option(file_okay=False, help="Write checkpoint.npz (every epoch), "
                                                                   "results.json and PNG plots here.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")] = False,
    distributed: Annotated[bool, typer.Option(help="Call jax.distributed.initialize() first (one process per "
                                                   "host; see docs/training.md).")] = False,
) -> None:
    """Train a spiking network with online plasticity (or BPTT) and report its test accuracy.

    Options left out take the dataset's recommended setting (shown per dataset under [default: ...]).
    """
    from . import data
    from . import train as training  # looked up at call time, so tests can replace plastix.train.train

    config = TrainConfig(dataset=dataset.value, data_path=None if data_path is None else str(data_path),
                         encoding=encoding.value, steps=steps, duration=duration, randman_dim=manifold_dim,
                         randman_samples=samples_per_class, model=None if model is None else model.value,
                         hidden=hidden, layers=layers, beta=beta, epochs=epochs, batch_size=batch_size, lr=lr,
                         seed=seed, mode=mode.value)
    try:
        config.check()
        training.train(config, out=out, resume=resume, progress=None, distributed=distributed)
    except (ConfigError, data.DataError, FileNotFoundError) as e:
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
bench.command("ad")(bench_ad.command)
bench.command("online")(bench_online.command)
bench.command("spellings")(bench_spellings.command)
app.command("orders")(bench_orders.command)


def main() -> None:  # pragma: no cover - convenience for `python -m plastix.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
