"""Each benchmark runs on its own (`python -m plastix.bench.<name>`) without the `plastix` command line, which
mounts the same command functions: the command line imports the benchmarks, never the reverse."""

import ast
from pathlib import Path

import pytest

import plastix.bench
import plastix.bench.ad as bench_ad
import plastix.bench.online as bench_online
import plastix.bench.orders as bench_orders
import plastix.bench.spellings as bench_spellings
from plastix.cli import app


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_no_benchmark_imports_the_command_line():
    for path in Path(plastix.bench.__file__).parent.rglob("*.py"):
        assert not {n for n in _imports(path) if n in ("plastix.cli", "..cli", "...cli") or n.endswith(".cli")}, path


@pytest.mark.parametrize("module, name, option", [(bench_ad, "ad", "--repeats"), (bench_online, "online", "--sizes"),
                                                  (bench_orders, "orders", "--seconds")])
def test_main_help_and_one_line_errors(module, name, option, capsys):
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m plastix.bench.{name}" in out and option in out and "--json" in out
    with pytest.raises(SystemExit) as info:
        module.main(["--no-such-option"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and err[0].startswith("Error: ") and "--no-such-option" in err[0]


def test_cli_mounts_the_benchmark_commands():
    commands = {c.name: c.callback for c in app.registered_commands}
    groups = {g.name: g.typer_instance for g in app.registered_groups}
    assert commands["orders"] is bench_orders.command
    bench = {c.name: c.callback for c in groups["bench"].registered_commands}
    assert bench == {"ad": bench_ad.command, "online": bench_online.command, "spellings": bench_spellings.command}
