"""The package faces hold: pumpd.audit, pumpd.drivers, pumpd.control and pumpd.controller
are reached only through their ``__init__`` (docs/architecture.md, "Package faces").

Outside a package, every import of one of its private modules fails here with the file,
the line and the face import to use instead; ``python -m tools.faces --write`` makes
those it can. A package's own tests (``tests/<package>/``) may import its private
modules; the few other tests that must reach inside are listed, each with its reason, in
``tools/faces.py`` (``WHITE_BOX``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pumpd_faces_tool", ROOT / "tools" / "faces.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


faces_tool = _load_tool()
FACES = faces_tool.read_faces(ROOT)


@pytest.mark.parametrize("package", faces_tool.PACKAGES)
def test_a_face_exports_exactly_what_it_imports(package: str) -> None:
    face = FACES[package]
    assert face.all, f"pumpd/{package}/__init__.py has no __all__"
    assert sorted(face.all) == sorted([*face.names, *face.modules]), (
        f"pumpd/{package}/__init__.py: __all__ and the face's imports differ"
    )
    assert face.modules <= face.submodules, "a public module of the face does not exist"
    loaded = importlib.import_module(f"pumpd.{package}")
    for name in face.all:
        assert hasattr(loaded, name), f"pumpd.{package}.{name} is in __all__ but not there"


def test_no_private_module_is_imported_from_outside_its_package() -> None:
    found = []
    for path in faces_tool.python_files(ROOT):
        for reach in faces_tool.reaches(ROOT, path, FACES):
            lines = path.read_text().splitlines(keepends=True)
            found.append(faces_tool.plan(reach, FACES[reach.package], lines, ROOT))
    if found:
        pytest.fail(
            "private modules imported from outside their package "
            "(python -m tools.faces --write rewrites those it can):\n"
            + "\n".join(faces_tool.describe(p, FACES) for p in found),
            pytrace=False,
        )


def test_no_module_of_a_package_imports_its_own_face() -> None:
    found = [
        f"{path}:{line}: `from pumpd.{path.split('/')[1]} import {name}`: import it from "
        f"its own module (the face imports this module: a cycle)"
        for file in faces_tool.python_files(ROOT)
        for path, line, name in faces_tool.own_face_imports(ROOT, file, FACES)
    ]
    assert not found, "\n".join(found)


def test_every_white_box_reach_is_still_made() -> None:
    """A listed reach no longer made is taken off the list, so the list stays true."""
    made = {
        (reach.path, faces_tool.private_module(reach.module))
        for path in faces_tool.python_files(ROOT)
        for reach in faces_tool.reaches(ROOT, path, FACES, white_box=True)
    }
    stale = [
        f"{path}: {module}" for path, module in faces_tool.WHITE_BOX if (path, module) not in made
    ]
    assert not stale, "WHITE_BOX lists reaches no longer made:\n" + "\n".join(stale)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_time_edges(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules ``name`` makes Python run while it is imported: its imports outside
    functions and ``if TYPE_CHECKING:``, each with the packages above it, except the
    packages ``name`` is itself inside (they are already being imported)."""
    tree = ast.parse(path.read_text(), str(path))
    inside = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
    if path.name == "__init__.py":
        inside.add(name)
    targets: list[str] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                targets.extend(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = faces_tool.absolute(path.relative_to(ROOT).as_posix(), node)
                if base:
                    targets.append(base)
                    targets.extend(f"{base}.{a.name}" for a in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit([n for n in getattr(node, field, []) if isinstance(n, ast.stmt)])

    visit(tree.body)
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known and prefix not in inside and prefix != name:
                edges.add(prefix)
    return edges


def test_no_face_is_on_an_import_cycle() -> None:
    """Whichever module is imported first (the daemon, a test, a command line each enter
    somewhere else), a face must not import something that imports it back: a cycle
    through an ``__init__`` leaves some module reading a half-made package."""
    paths = {
        _module_name(p): p for top in ("pumpd", "pumpd_board") for p in (ROOT / top).rglob("*.py")
    }
    known = set(paths)
    graph = {name: _import_time_edges(path, name, known) for name, path in paths.items()}
    faces = {f"pumpd.{package}" for package in faces_tool.PACKAGES}
    cycles = []
    for face in sorted(faces):
        # A path from the face back to itself, found breadth first (the shortest).
        came_from: dict[str, str] = {}
        frontier = [face]
        while frontier and face not in came_from:
            step = []
            for node in frontier:
                for nxt in sorted(graph.get(node, ())):
                    if nxt not in came_from:
                        came_from[nxt] = node
                        step.append(nxt)
            frontier = step
        if face in came_from:
            chain, node = [face], came_from[face]
            while node != face:
                chain.append(node)
                node = came_from[node]
            cycles.append(" -> ".join([face, *reversed(chain)]))
    assert not cycles, "import cycles through a face:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "entry",
    ["pumpd.audit", "pumpd.drivers", "pumpd.controller", "pumpd.control", "pumpd.session",
     "pumpd.cli.daemon", "pumpd_board.cli", "pumpd.cli.pumpaudit"],
)  # fmt: skip
def test_each_entry_imports_first_in_a_fresh_interpreter(entry: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {entry}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr


def test_the_rewrite_moves_face_names_and_lists_the_rest(tmp_path: Path) -> None:
    """On a small tree: face names move to the face import, the others stay and are
    listed, and a second run changes nothing."""
    for package in faces_tool.PACKAGES:
        (tmp_path / "pumpd" / package).mkdir(parents=True)
        (tmp_path / "pumpd" / package / "__init__.py").write_text("__all__ = []\n")
    (tmp_path / "pumpd" / "__init__.py").write_text("")
    (tmp_path / "pumpd" / "audit" / "__init__.py").write_text(
        "from pumpd.audit.store import AuditStore\n\n__all__ = ['AuditStore']\n"
    )
    (tmp_path / "pumpd" / "audit" / "store.py").write_text("class AuditStore: ...\n")
    caller = tmp_path / "bench" / "caller.py"
    caller.parent.mkdir()
    caller.write_text(
        "def run() -> None:\n"
        "    from pumpd.audit.store import AuditStore as Store, NotInTheFace\n"
        "    print(Store, NotInTheFace)\n"
    )
    own = tmp_path / "tests" / "audit" / "test_store.py"
    own.parent.mkdir(parents=True)
    own.write_text("from pumpd.audit.store import AuditStore\n")
    importlib.import_module("pumpd.audit")  # the real one: the small tree is never imported

    assert faces_tool.main(["--write", "--root", str(tmp_path)]) == 1
    rewritten = caller.read_text()
    assert "    from pumpd.audit import AuditStore as Store\n" in rewritten
    assert "    from pumpd.audit.store import NotInTheFace\n" in rewritten
    assert own.read_text() == "from pumpd.audit.store import AuditStore\n"

    assert faces_tool.main(["--write", "--root", str(tmp_path)]) == 1
    assert caller.read_text() == rewritten
