"""The doors of docs/architecture.md, checked over every module of the package.

- The core (the top-level modules and ``labels``, ``data``, ``metrics``, ``layouts``) imports neither
  torch nor Qt nor napari, so readers, label tools and metrics run anywhere, and never imports the
  napari plugin (``napari_cosynth.napari``) or the command line (``napari_cosynth.cli``).
- Nothing outside ``napari_cosynth.napari`` imports napari, magicgui, qtpy or a Qt binding when it is
  imported: ``pip install .`` (no ``napari`` extra) is the headless install for clusters.
- No import cycles between modules (function-level imports count: a cycle hidden in a function
  still ties two modules into one), and no module over 400 lines.

Modules are found on disk with :mod:`pkgutil` (nothing is imported to list them), so a new module is
checked without anyone adding it here. The import checks run in a fresh interpreter per group with
the forbidden names blocked, so each module is judged on its own and the failure names the line that
imports the forbidden package.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import napari_cosynth

PACKAGE = "napari_cosynth"
ROOT = Path(napari_cosynth.__file__).parent
CORE_PACKAGES = ("labels", "data", "metrics", "layouts")  # besides every top-level module
# Loaded by `cosynth --help` (every command registers from cli.main) and by napari's manifest
# (the reader runs on every folder napari opens): torch is imported inside their functions only.
ENTRY_POINTS = ("napari_cosynth.cli", "napari_cosynth.cli.main", "napari_cosynth.napari.reader",
                "napari_cosynth.evaluate.separation")
PLUGIN = f"{PACKAGE}.napari"
CLI = f"{PACKAGE}.cli"
GUI = ("napari", "magicgui", "qtpy", "npe2", "PyQt5", "PyQt6", "PySide2", "PySide6")
TORCH = ("torch", "torchvision", "diffusers", "open_clip", "segmentation_models_pytorch")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Every module of the package (name -> file), found on disk without importing anything."""
    found = {PACKAGE: ROOT / "__init__.py"}

    def walk(path: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(path)], prefix):
            leaf = info.name.rpartition(".")[2]
            if info.ispkg:
                found[info.name] = path / leaf / "__init__.py"
                walk(path / leaf, info.name + ".")
            elif leaf != "__main__":  # running it is the command line, not an import
                found[info.name] = path / f"{leaf}.py"

    walk(ROOT, PACKAGE + ".")
    return found


MODULES = _modules()


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _is_core(name: str) -> bool:
    parts = name.split(".")
    if len(parts) == 1 or (len(parts) == 2 and MODULES[name].name != "__init__.py"):
        return True  # the package itself and its top-level modules
    return parts[1] in CORE_PACKAGES


# ------------------------------------------------------------------------ imports in a fresh process

# Runs in a fresh interpreter: blocks the forbidden names (a ModuleNotFoundError, as on an install
# without them), imports each module, and reports which package module's line asked for which name.
_PROBE = r"""
import importlib, json, sys, traceback
from importlib.abc import MetaPathFinder

modules, banned, package = json.loads(sys.argv[1])
root = importlib.import_module(package).__path__[0]
hits = []


class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if not any(name == b or name.startswith(b + ".") for b in banned):
            return None
        frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
        importer = frames[-1] if frames else None
        if importer is not None and importer.filename.startswith(root):
            where = importer.filename[len(root) - len(package):]
            hits.append(f"{where}:{importer.lineno} imports {name}")
        raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)


sys.meta_path.insert(0, Block())
failed = {}
for module in modules:
    try:
        importlib.import_module(module)
    except ImportError as err:
        failed[module] = str(err)
print(json.dumps({"hits": sorted(set(hits)), "failed": failed}))
"""


def _probe(modules: list[str], banned: tuple[str, ...]) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([modules, list(banned), PACKAGE])],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _report(result: dict) -> str:
    lines = result["hits"] + [f"{m} cannot be imported: {e}" for m, e in sorted(result["failed"].items())]
    return "\n".join(lines)


def test_core_imports_neither_torch_nor_qt_nor_napari_nor_the_plugin_or_cli():
    core = sorted(m for m in MODULES if _is_core(m))
    assert f"{PACKAGE}.labels.points" in core and f"{PACKAGE}.sample" in core
    result = _probe(core, TORCH + GUI + (PLUGIN, CLI))
    assert not result["hits"] and not result["failed"], "\n" + _report(result)


def test_entry_points_import_torch_only_inside_functions():
    result = _probe(list(ENTRY_POINTS), TORCH)
    assert not result["hits"] and not result["failed"], "\n" + _report(result)


@pytest.mark.slow  # imports the whole package, torch and diffusers included (10-15 s)
def test_nothing_outside_the_plugin_imports_napari_or_qt():
    headless = sorted(m for m in MODULES if not _in(m, PLUGIN))
    assert f"{PACKAGE}.cli.main" in headless
    result = _probe(headless, GUI)
    assert not result["hits"] and not result["failed"], "\n" + _report(result)


# --------------------------------------------------------------------------------- static import graph


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str) -> list[tuple[str, int]]:
    """The package modules ``module`` imports (at any level; not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.If) and _is_type_checking(node.test)
               for child in node.body for n in ast.walk(child)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found += [(name, node.lineno) for name in names if name in MODULES and name != module]
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_cycle_finder_finds_a_cycle_and_only_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    edges = {m: _imports(m) for m in MODULES}
    graph = {m: {name for name, _ in found} for m, found in edges.items()}
    lines = []
    for component in _cycles(graph):
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        lines += [f"    {m} line {line} imports {name}" for m in component
                  for name, line in sorted(set(edges[m])) if name in members]
    assert not lines, "\n" + "\n".join(lines)


def test_core_never_imports_the_plugin_or_the_cli_even_inside_functions():
    lines = [f"{m} line {line} imports {name}" for m in MODULES if _is_core(m)
             for name, line in _imports(m) if _in(name, PLUGIN) or _in(name, CLI)]
    assert not lines, "\n" + "\n".join(lines)


def test_no_module_is_over_400_lines():
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    over = [f"{m}: {n} lines" for m, n in sorted(sizes.items(), key=lambda kv: -kv[1]) if n > MAX_LINES]
    assert not over, "\n" + "\n".join(over)
