"""The shape of the ``plastix.ad`` source: acyclic module-level imports, no imports inside functions, short
functions, no primitives recognised by name."""

import ast
from pathlib import Path

import pytest

import plastix.ad

AD = Path(plastix.ad.__file__).parent
MAX_LINES = 60  # end_lineno - lineno of any function (docstring included)
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _sources() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(AD.glob("*.py"))}


def _module_level(tree: ast.Module):
    """Statements executed at import: the module body and the bodies of its ``if``/``try``/``with``/classes."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, FUNCTIONS):
            stack.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))


def _targets(node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The sibling modules of ``plastix.ad`` that an import statement of one of them imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.level == 0:
        names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
    elif node.level == 1:
        names = [f"plastix.ad.{node.module}" if node.module else "plastix.ad"]
        names += [f"{names[0]}.{alias.name}" for alias in node.names]
    else:
        names = ["plastix.<outside ad>"]
    found = set()
    for name in names:
        if name.startswith("plastix.") and not name.startswith("plastix.ad"):
            found.add("<outside plastix.ad>")
        parts = name.split(".")
        if parts[:2] == ["plastix", "ad"] and len(parts) > 2 and parts[2] in modules:
            found.add(parts[2])
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    """``{module: modules of plastix.ad it imports at module level}`` (``__init__`` excluded: it imports all)."""
    modules = set(sources) - {"__init__"}
    graph = {}
    for name in modules:
        tree = ast.parse(sources[name])
        graph[name] = set().union(*(_targets(node, modules) for node in _module_level(tree)
                                    if isinstance(node, ast.Import | ast.ImportFrom)))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == 1:
                return path[path.index(succ):] + [succ]
            if succ not in state and (cycle := visit(succ)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def nested_imports(sources: dict[str, str]) -> list[str]:
    """``module:line function`` of every import statement inside a function."""
    found = []
    for name, source in sources.items():
        for fn in ast.walk(ast.parse(source)):
            if isinstance(fn, FUNCTIONS):
                found += [f"{name}:{node.lineno} {fn.name}" for node in ast.walk(fn)
                          if isinstance(node, ast.Import | ast.ImportFrom)]
    return sorted(set(found))


def long_functions(sources: dict[str, str]) -> list[str]:
    """``module.function (lines)`` of every function longer than :data:`MAX_LINES`."""
    return [f"{name}.{node.name} ({node.end_lineno - node.lineno})" for name, source in sources.items()
            for node in ast.walk(ast.parse(source))
            if isinstance(node, FUNCTIONS) and node.end_lineno - node.lineno > MAX_LINES]


def name_comparisons(sources: dict[str, str]) -> list[str]:
    """``module:line`` of every comparison with a ``.name`` attribute (primitives are recognised as objects)."""
    return [f"{name}:{node.lineno}" for name, source in sources.items() for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Compare) and any(isinstance(x, ast.Attribute) and x.attr == "name"
                                                     for x in [node.left, *node.comparators])]


def test_module_imports_are_acyclic_and_stay_inside_ad():
    graph = import_graph(_sources())
    assert find_cycle(graph) is None, f"import cycle in plastix.ad: {' -> '.join(find_cycle(graph))}"
    outside = sorted(name for name, targets in graph.items() if "<outside plastix.ad>" in targets)
    assert not outside, f"plastix.ad modules importing other parts of plastix: {outside}"


def test_no_imports_inside_functions():
    assert not nested_imports(_sources()), "imports inside functions (move them to module level)"


def test_no_long_functions():
    assert not long_functions(_sources()), f"functions over {MAX_LINES} lines; split them into helpers"


def test_primitives_are_not_recognised_by_name():
    assert not name_comparisons(_sources())


@pytest.mark.parametrize("sources, cycle", [
    ({"a": "from .b import x\n", "b": "from . import c\n", "c": "import plastix.ad.a\n"}, ["a", "b", "c", "a"]),
    ({"a": "if True:\n    from plastix.ad.b import x\n", "b": "from .a import y\n"}, ["a", "b", "a"]),
    ({"a": "from .b import x\n", "b": "def f():\n    from .a import y\n"}, None),
])
def test_the_checks_catch_what_they_promise(sources, cycle):
    assert find_cycle(import_graph(sources)) == cycle
    nested = nested_imports(sources)
    assert nested == (["b:2 f"] if "def f" in sources["b"] else [])
    body = "\n".join(f"    x = {k}" for k in range(MAX_LINES + 1))
    assert long_functions({"m": f"def f():\n{body}\n"}) == [f"m.f ({MAX_LINES + 1})"]
    assert name_comparisons({"m": "ok = eqn.primitive.name == 'jit'\n"}) == ["m:1"]
