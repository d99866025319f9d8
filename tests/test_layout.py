"""The package layout: stage subpackages, the layer contract, no import cycles, no hidden imports, docs in sync.

These checks read the source (grimp / ast); they import nothing heavy and run in seconds.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "rsaug"
STAGES = ("core", "io", "tiling", "gan", "synthesis", "segmentation", "evaluation", "benchmark", "integrations")
#: Deprecated top-level modules kept for one release (they only re-export).
SHIMS = {"rsaug.generation", "rsaug.datasets", "rsaug.tileset", "rsaug.training", "rsaug.config"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("rsaug", cache_dir=None)


def test_every_module_lives_in_a_stage_subpackage() -> None:
    """Nothing but ``__init__`` and the deprecated shims sits at the top of ``rsaug/``."""
    top = {name for name in _modules() if name.count(".") == 1}
    assert top - SHIMS == {f"rsaug.{s}" for s in STAGES}


def test_no_import_cycles() -> None:
    """No module can reach itself through imports (function-level imports included)."""
    graph = _graph()
    internal = {m for m in graph.modules if m.startswith("rsaug")}
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m) if d in internal} for m in internal}
    # a package's __init__ re-exporting its own submodules is not a cycle of ideas: drop edges parent -> child
    for m, deps in edges.items():
        edges[m] = {d for d in deps if not d.startswith(m + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(internal):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_layer_contract_is_kept() -> None:
    """import-linter's contract (setup.cfg): core -> io -> tiling | gan | segmentation | integrations ->
    synthesis -> evaluation | benchmark; lower layers never import higher ones, siblings never each other."""
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    res = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "1 kept, 0 broken" in res.stdout


def test_a_broken_layer_is_detected() -> None:
    """The contract check can fail: an import from core up to benchmark is reported."""
    graph = _graph()
    graph.add_import(importer="rsaug.core.files", imported="rsaug.benchmark.runner")
    layers = ("rsaug.benchmark", "rsaug.synthesis", "rsaug.io", "rsaug.core")
    bad = graph.find_illegal_dependencies_for_layers(layers=layers)
    assert any(d.importer == "rsaug.core" and d.imported == "rsaug.benchmark" for d in bad)


def _local_rsaug_imports(path: Path) -> list[str]:
    """``import rsaug...`` statements inside functions or methods of one module."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("rsaug"):
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno} from {inner.module}")
                elif isinstance(inner, ast.Import) and any(a.name.startswith("rsaug") for a in inner.names):
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno} import rsaug")
    return found


def test_rsaug_imports_sit_at_module_top() -> None:
    """Function-level imports of rsaug modules hid the old cycles; only third-party imports may be lazy."""
    found = [hit for path in _modules().values() for hit in _local_rsaug_imports(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("stage", STAGES)
def test_stage_packages_document_themselves(stage: str) -> None:
    """Every stage's ``__init__`` says what it owns and what it may import, and lists what it exports."""
    init = PACKAGE / stage / "__init__.py"
    tree = ast.parse(init.read_text())
    doc = ast.get_docstring(tree) or ""
    assert "May import" in doc, f"{init}: docstring must say what the stage may import"
    exported = [
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)
    ]
    assert exported, f"{init}: no __all__"
    mod = __import__(f"rsaug.{stage}", fromlist=["__all__"])
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"rsaug.{stage}.__all__ names missing: {missing}"


def test_architecture_doc_matches_the_tree() -> None:
    """docs/ARCHITECTURE.md names every module of the package (packages are in its stage table), and every module
    it names exists."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`(rsaug/[\w/]+\.py)`", text))
    real = {str(p.relative_to(ROOT)) for name, p in _modules().items() if name not in SHIMS and p.name != "__init__.py"}
    assert named, "no module paths found in docs/ARCHITECTURE.md"
    assert not named - real, f"named in docs/ARCHITECTURE.md but missing: {sorted(named - real)}"
    assert not real - named, f"modules missing from docs/ARCHITECTURE.md: {sorted(real - named)}"


def test_deprecated_paths_still_import() -> None:
    """The README's old import paths keep working for one release, with a DeprecationWarning."""
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n    import rsaug.generation\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "warned: rsaug.generation moved to rsaug.gan" in res.stdout, res.stdout + res.stderr
    code = (
        "from rsaug.generation import load_generator; from rsaug.datasets import TileSetImages\n"
        "from rsaug.benchmark import SegmenterConfig, preset, train_segmenter; import rsaug.segmentation as s\n"
        "assert SegmenterConfig is s.SegmenterConfig and train_segmenter is s.train_segmenter; print('ok')"
    )
    res = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert res.stdout.strip() == "ok", res.stderr
