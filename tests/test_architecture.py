"""The layering of the package, checked rather than hoped for (see docs/architecture.md)."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

import plastix

PACKAGE = Path(plastix.__file__).parent
ROOT = Path(__file__).resolve().parents[1]


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield path, parts[:-1] if parts[-1] == "__init__" else parts


def imported(path: Path, name: tuple[str, ...]):
    """Absolute module names imported by a module (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (tuple(alias.name.split(".")) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = base + tuple(node.module.split(".")) if node.module else base
            yield module
            yield from (module + (alias.name,) for alias in node.names)


def test_no_package_imports_another_packages_private_module():
    offences = []
    for path, name in modules():
        for target in imported(path, name):
            if target[0] != "plastix" or len(target) < 3:
                continue
            private = next((k for k, part in enumerate(target[2:], 2) if part.startswith("_")), None)
            if private is not None and target[1] != name[1]:
                offences.append(f"{'.'.join(name)} imports {'.'.join(target[:private + 1])}")
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("package", ["online", "ad"])
def test_functions_are_short(package):
    """No function over 60 lines in online/ and ad/, except the rule tables of ad/_rules.py."""
    long = []
    for path in sorted((PACKAGE / package).glob("*.py")):
        if path.name == "_rules.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "\n".join(long)


def test_import_linter_contracts_hold():
    """The layers and privacy contracts in pyproject.toml (import-linter)."""
    if not (ROOT / "pyproject.toml").exists():
        pytest.fail("pyproject.toml not found next to tests/")
    lint = shutil.which("lint-imports")
    assert lint, "lint-imports (import-linter, a test dependency) is not installed"
    result = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
