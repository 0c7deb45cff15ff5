"""The package's shape: no import cycles, one training loop, modules a reader can take in at once, no
private name used across modules, and no ``sys.path`` manipulation anywhere in the repository."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "code" / "transformer_course"
TOOLS = ROOT / "code" / "book_tools"  # the book's build tools, run as python -m book_tools.<name>
MODULES = {
    ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__"): path
    for path in sorted(PACKAGE.rglob("*.py"))
}


def _imports(name: str, path: Path) -> set[str]:
    """The package modules that ``name`` imports, at the top or inside a function."""
    package = name.rsplit(".", 1)[0] if "." in name and path.name != "__init__.py" else ""
    if path.name == "__init__.py":
        package = name
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("transformer_course"):
                    continue
                base = node.module.removeprefix("transformer_course").lstrip(".")
            else:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}".lstrip(".")
                found.add(candidate if candidate in MODULES else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("transformer_course."):
                    found.add(alias.name.removeprefix("transformer_course."))
    return {module for module in found if module in MODULES and module != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_import_graph_is_found():
    assert "attention" in GRAPH["encoder"]  # the parser sees imports at all
    assert "tokenization.wordpiece" in GRAPH["tokenization"]


def test_no_two_modules_import_each_other_directly_or_in_a_circle():
    # A subpackage's __init__ re-exporting its own modules is not a circle: skip the edge
    # module -> its own package.
    def edges(name):
        return {m for m in GRAPH[name] if not (name.startswith(m + ".") and m in MODULES)}

    state: dict[str, int] = {}

    def visit(name, path):
        state[name] = 1
        for other in edges(name):
            if state.get(other) == 1:
                cycle = path[path.index(other):] + [other] if other in path else [name, other]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, [*path, other])
        state[name] = 2

    for name in GRAPH:
        if name not in state:
            visit(name, [name])


def test_the_package_init_imports_nothing():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def test_one_training_loop():
    def lines(pattern):
        return [
            f"{path.name}:{i}"
            for path in MODULES.values()
            for i, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(pattern, line.split("#")[0])
        ]

    plain, scaled = lines(r"optimizer\.step\(\)"), lines(r"\.step\(optimizer\)")
    assert len(plain) == 1, plain
    # float16's gradient scaler steps the optimizer in the same loop, a few lines further
    assert [s.split(":")[0] for s in scaled] == [plain[0].split(":")[0]], scaled


def test_the_training_loop_stays_short_with_its_extras_as_callbacks():
    """At most 8 arguments and 60 lines of body: a new need is a training.Callback, not an argument."""
    tree = ast.parse(MODULES["training"].read_text())
    train = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "train")
    arguments = train.args
    assert len(arguments.args) + len(arguments.kwonlyargs) <= 8
    assert not arguments.vararg and not arguments.kwarg
    body = train.body[1:]  # without the docstring
    assert body[-1].end_lineno - body[0].lineno + 1 <= 60


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_long_module_says_why_at_its_top(name):
    path = MODULES[name]
    lines = path.read_text().count("\n")
    if lines <= 500:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "500 lines" in docstring, f"{name}: {lines} lines and no reason at its top"


@pytest.mark.slow  # starts a Python process
def test_importing_the_package_loads_no_module_of_it():
    code = ("import sys, transformer_course; "
            "print(sorted(m for m in sys.modules if m.startswith('transformer_course')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['transformer_course']"


def test_one_minimum_python_everywhere():
    """The README, the metadata of the course package and of the book's tools (book_tools, the
    top-level pyproject.toml) and ruff's target name the same oldest Python."""
    root = PACKAGE.parents[1]
    readme = re.search(r"Python (3\.\d+) or newer", (root / "README.md").read_text()).group(1)
    metadata = (root / "code" / "pyproject.toml").read_text()
    required = re.search(r'requires-python = ">=(3\.\d+)"', metadata).group(1)
    top_level = (root / "pyproject.toml").read_text()
    tools_required = re.search(r'requires-python = ">=(3\.\d+)"', top_level).group(1)
    target = re.search(r'target-version = "py3(\d+)"', top_level).group(1)
    assert readme == required == tools_required == f"3.{target}", (readme, required, tools_required, target)
    assert sys.version_info >= tuple(int(part) for part in required.split("."))


@pytest.mark.parametrize("path", sorted([*PACKAGE.rglob("*.py"), *TOOLS.rglob("*.py")]), ids=lambda p: p.name)
def test_no_module_is_longer_than_600_lines(path):
    assert path.read_text().count("\n") <= 600, f"{path.relative_to(ROOT)}: split it by what it does"


def _private_names_used_across_modules(name: str, path: Path) -> list[str]:
    """``from .other import _name`` and ``other._name`` where ``other`` is another module of the
    package (a private module such as ``_checks`` may be imported; its public names used)."""
    tree = ast.parse(path.read_text())
    modules = {}  # local name -> package module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or node.module.startswith("transformer_course")):
            for alias in node.names:
                imported = _imports(name, path) & {m for m in MODULES if m.rsplit(".", 1)[-1] == alias.name}
                if imported:
                    modules[alias.asname or alias.name] = imported.pop()
                elif alias.name.startswith("_"):
                    found.append(f"{name}: from {'.' * node.level}{node.module or ''} import {alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{name}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [use for name, path in MODULES.items() for use in _private_names_used_across_modules(name, path)]
    assert found == []


def test_the_private_name_check_sees_a_private_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from .encoder import _check_encoder_input\nfrom . import training\ntraining._x\n")
    assert len(_private_names_used_across_modules("planted", planted)) == 2


def test_nothing_in_the_repository_edits_sys_path():
    edit = re.compile(r"sys\.path\.(insert|append)|sys\.path\s*=")
    sources = [path for folder in ("code", "tests", "benchmarks") for path in (ROOT / folder).rglob("*.py")]
    editing = [str(path.relative_to(ROOT)) for path in sources
               if path != Path(__file__) and edit.search(path.read_text())]
    assert editing == []
    # Jupyter Book's local_extensions put their folders on sys.path
    assert "local_extensions" not in (ROOT / "_config.yml").read_text()
