"""The house rules, checked on the source: layers call only downward, no import cycle, short
modules and functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "ccdred"

LAYERS = [
    ["ccdred._version", "ccdred.errors", "ccdred.flags", "ccdred.atomic"],
    ["ccdred.kernels", "ccdred.geometry", "ccdred.instruments"],
    ["ccdred.display", "ccdred.plots", "ccdred.quicklook"],
    ["ccdred.frame"],
    ["ccdred.io"],
    ["ccdred.files"],
    ["ccdred.stacking", "ccdred.inventory", "ccdred.simulate", "ccdred.simulate_cmos",
     "ccdred.simulate_files"],
    ["ccdred.steps", "ccdred.library", "ccdred.qa"],
    ["ccdred.pipeline"],
    ["ccdred.report"],
    ["ccdred.cli", "ccdred.__main__", "ccdred"],
]
"""Lowest first. A module may import modules of its own layer or below, never above."""

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
"""Statements of a function's body, its docstring not counted."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (never executed)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str) -> set[str]:
    """The ccdred modules ``name`` imports, at module level or inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ccdred")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("ccdred"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {target for target in found if target in MODULES} - {name}


GRAPH = {name: imports_of(name) for name in MODULES}


def layer_of(name: str) -> int:
    best, level = -1, None
    for index, layer in enumerate(LAYERS):
        for prefix in layer:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    assert level is not None, f"{name} is in no layer: add it to LAYERS"
    return level


def test_the_graph_sees_real_imports():
    assert "ccdred.frame" in GRAPH["ccdred.io.fits_read"]
    assert "ccdred.pipeline.recipes" in GRAPH["ccdred.pipeline.masters"]
    assert "ccdred.plots" in GRAPH["ccdred.frame"]  # a function-level import counts too


@pytest.mark.parametrize("name", sorted(MODULES))
def test_layers_call_only_downward(name):
    upward = sorted(t for t in GRAPH[name] if layer_of(t) > layer_of(name))
    assert not upward, f"{name} imports {upward} from a higher layer"


def test_no_import_cycle():
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_short(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"


def _function_lengths(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                body = body[1:]
            if body:
                yield node.name, node.lineno, body[-1].end_lineno - body[0].lineno + 1


@pytest.mark.parametrize("name", sorted(MODULES))
def test_functions_are_short(name):
    long = [f"{function} (line {line}): {length}"
            for function, line, length in _function_lengths(MODULES[name])
            if length > MAX_FUNCTION_LINES]
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_flags_are_tested_by_name_not_by_hand():
    """``(dq & np.uint16(Flag.X)) != 0`` is `flagged` / `Frame.has`, written once."""
    offenders = [f"{name}:{number}" for name, path in MODULES.items()
                 for number, line in enumerate(path.read_text().splitlines(), start=1)
                 if "np.uint16(" in line and "& np.uint16(" in line and "!= 0" in line
                 and name != "ccdred.flags"]
    assert not offenders
