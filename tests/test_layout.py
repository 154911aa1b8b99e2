"""The layout is the architecture: one core, three faces. Walks every import in src/ftstudio (module level and
inside functions alike, read with ast) and checks the rules of DESIGN.md: the core imports neither the CLI nor the
studio, the studio never imports the CLI, stage settings are leaves, and no import circle exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
FACES = ("ftstudio.cli", "ftstudio.ui", "ftstudio.__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m == "ftstudio" or m.startswith("ftstudio.")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    # `from ftstudio.x import name` names a module only when x.name is one; otherwise it is the module x.
    return {name: {m for m in _imports(path, name) if m in modules} - {name} for name, path in modules.items()}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_core_imports_neither_face(graph):
    bad = [(m, i) for m, imports in graph.items() if not any(_in(m, f) for f in FACES)
           for i in imports if any(_in(i, f) for f in FACES)]  # fmt: skip
    assert not bad, f"core modules importing a face: {bad}"


def test_the_studio_never_imports_the_cli(graph):
    bad = [(m, i) for m, imports in graph.items() if _in(m, "ftstudio.ui") for i in imports if _in(i, "ftstudio.cli")]
    assert not bad, f"studio modules importing the CLI: {bad}"


def test_stage_settings_are_leaves(graph):
    for module, imports in graph.items():
        if module.endswith(".settings") and module != "ftstudio.settings":
            assert imports <= {"ftstudio.knowledge.safe_read"}, f"{module} imports {imports}"
    assert {i for i in graph["ftstudio.settings"] if not i.endswith(".settings")} == set()


def test_no_import_circle(graph):
    # A module importing its own package (ftstudio.train.backends.hf reading ftstudio.train.backends) is how a
    # package shares its helpers, not a circle between modules; the API package's re-exports are left out too.
    edges = {m: {i for i in imports if i != "ftstudio" and not m.startswith(i + ".")} for m, imports in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " → ".join([*stack[stack.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_api_is_the_package_itself():
    import ftstudio

    for name in ("Project", "ingest", "search", "check_model", "generate", "train", "evaluate", "export", "chat"):
        assert name in ftstudio.__all__ and callable(getattr(ftstudio, name))
