"""The package's shape: import arrows run one way (features <- training <- serving <- the application), with
no circles, and a built wheel installs one top-level name, ``tiercast``, holding every module of the layer
folders.

Modules are found by walking the folders, so modules and subpackages added later are checked as well.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each layer folder and the package it installs as; lower layers first. Everything else of ours under
# `tiercast` (the CLI, the config, the jobs, the analyses, the simulator) is the application, above them all.
LAYERS = {"features": "tiercast.features", "training": "tiercast.training", "serving": "tiercast.serving"}
APPLICATION = "tiercast"
LAYER_NAMES = [*LAYERS, "application"]


def _module_name(package: str, relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def modules() -> dict[str, Path]:
    """Every module of the layer folders and the application folder, by its installed name."""
    found = {}
    for folder, package in {**LAYERS, APPLICATION: APPLICATION}.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(package, path.relative_to(ROOT / folder))] = path
    return found


def rank(module: str) -> int:
    """0, 1, 2 for features, training, serving; 3 for the application; -1 for the bare `tiercast` package,
    which everyone may import and which may import nothing of ours."""
    if module == APPLICATION:
        return -1
    for position, package in enumerate(LAYERS.values()):
        if module == package or module.startswith(package + "."):
            return position
    return len(LAYERS)


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ours that ``module`` imports anywhere in its file (in functions and TYPE_CHECKING
    blocks too), resolved to the most specific known module."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:  # `import tiercast.x.y` of a name inside a module
                target = target.rsplit(".", 1)[0]
            if target in known and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


def test_the_walk_finds_every_layer():
    ranks = {rank(module) for module in modules()}
    assert ranks >= {0, 1, 2, 3}, ranks


def test_import_arrows_run_one_way():
    offenders = sorted(f"{module} ({LAYER_NAMES[rank(module)] if rank(module) >= 0 else 'tiercast/__init__'}) "
                       f"imports {target} ({LAYER_NAMES[rank(target)]})"
                       for module, targets in import_graph().items() for target in targets
                       if rank(target) > rank(module))
    assert not offenders, ("features <- training <- serving <- application: a layer imports only itself and the "
                           "layers below it, but\n  " + "\n  ".join(offenders))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_circles():
    circles = _cycles(import_graph())
    assert not circles, "modules that import each other, directly or round a circle:\n  " + "\n  ".join(
        " <-> ".join(circle) for circle in circles)


def _copy_source(folder: Path) -> Path:
    """The files a build reads, copied away from the repository (a build in place would leave `build/`
    behind, whose stale files later builds would pick up)."""
    skip_at_root = {".git", ".venv", "build", "data", "outputs", "mlruns", "mlartifacts", "tests", "benchmarks",
                    "notebooks", "docs"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info") or n.endswith(".db")}
        return skipped | (skip_at_root & set(names) if Path(directory) == ROOT else set())

    return Path(shutil.copytree(ROOT, folder, ignore=ignore))


def test_the_wheel_holds_one_top_level_name_with_every_module(tmp_path):
    source = _copy_source(tmp_path / "source")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "--quiet", str(source), "-w", str(tmp_path / "dist")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("tiercast-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0].removesuffix(".py") for name in names
                 if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"tiercast"}
    packaged = {name for name in names if name.endswith(".py")}
    expected = {str(Path(*module.split(".")) / "__init__.py") if path.name == "__init__.py"
                else str(Path(*module.split("."))) + ".py" for module, path in modules().items()}
    assert not expected - packaged, (
        "modules missing from the wheel (is their package in [tool.setuptools] packages and package-dir of "
        f"pyproject.toml?): {sorted(expected - packaged)}")
    assert not packaged - expected, f"files in the wheel that the repository does not have: {sorted(packaged - expected)}"


def test_the_command_line_starts_without_the_heavy_libraries():
    """Every command imports the CLI first: scikit-learn, SciPy's statistics and matplotlib (about 1.4 s together)
    are imported only by the code that uses them, not at start."""
    heavy = ("sklearn", "scipy.stats", "matplotlib", "lightgbm", "mlflow")
    code = ("import sys, tiercast.cli; "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
