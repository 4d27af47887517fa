"""Package faces: what each layered package of pumpd shows, and who reaches past it.

``pumpd.audit``, ``pumpd.drivers``, ``pumpd.control`` and ``pumpd.controller`` each export
their public API from ``__init__.py`` (structlog's style: a small face, private modules
behind it). A module of such a package is public only if the face names it in
``__all__`` (``pumpd.audit.catalogue``, for one); every other module is private to the
package and its own tests (``tests/<package>/``). The rule and the faces are written down
in docs/architecture.md, "Package faces"; tests/test_package_faces.py holds it.

Run from the repository root; re-run after merging branches that add imports::

    python -m tools.faces            # dry run: what would be rewritten, what cannot be
    python -m tools.faces --write    # rewrite, then sort and format the changed files

``--write`` turns ``from pumpd.X.private import name`` outside package X into
``from pumpd.X import name`` for every name the face of X exports (the same object: a
re-exported name is followed), then runs ``ruff check --select I --fix`` and
``ruff format`` on the files it changed. It is idempotent: a second run changes nothing.
What it cannot rewrite is listed with the reason (a name the face does not export,
``import pumpd.X.private``, a private module taken through the package, comments inside
the statement), and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import subprocess
import sys
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("audit", "drivers", "control", "controller")
"""The packages with a face, each ``pumpd.<name>``."""

ROOTS = ("pumpd", "pumpd_board", "bench", "soak", "hardware-sim", "tests", "migrations", "tools")
"""Where code that may import them lives (relative to the repository root)."""

WHITE_BOX: dict[tuple[str, str], str] = {
    ("bench/bench_line.py", "pumpd.drivers.priority"): (
        "switches the line's halt priority off for its same-run baseline"
    ),
    ("bench/bench_line.py", "pumpd.controller.loop"): (
        "stamps the kernel's decision to cut a reaction into segments"
    ),
    ("tests/bench/test_bench_line.py", "pumpd.drivers.priority"): (
        "checks the bench restores the halt priority it switched off"
    ),
    ("tests/daemon/test_daemon.py", "pumpd.drivers.line"): (
        "wedges the pumps' shared line to stall the poll loops under the watchdog"
    ),
    ("tests/audit/test_supervision_record.py", "pumpd.controller.events"): (
        "the auditors' SQL read against the record the controller's builder makes"
    ),
    ("tests/audit/test_readers.py", "pumpd.control.course"): (
        "every reader of the audit log, the control socket's course history among them"
    ),
    ("tests/audit/test_course_dosing_weight.py", "pumpd.control.course"): (
        "the course history's dosing weight, read from a real audit store"
    ),
    ("tests/controller/test_time_remaining.py", "pumpd.control.views"): (
        "the time remaining as the status view shows it, from a real controller"
    ),
    ("tests/daemon/test_keyed_daemon.py", "pumpd.control.views"): (
        "the status view of every pump of a running keyed daemon"
    ),
    ("tests/drivers/conformance/test_conformance.py", "pumpd.controller.checkpoint"): (
        "each backend's restart evidence as the recovery judges it from a checkpoint"
    ),
    ("tests/drivers/conformance/test_conformance.py", "pumpd.controller.translate"): (
        "each backend's restart evidence as the controller's tick judges it"
    ),
    ("tests/fuzz/test_control_socket.py", "pumpd.control.methods"): (
        "the fuzzer draws its requests from the method table"
    ),
    ("tests/fuzz/test_control_socket.py", "pumpd.control.rpc"): (
        "the fuzzer checks the error codes and the line bound of the wire format"
    ),
}
"""Tests and benchmarks that reach into another package's private module on purpose,
each with its reason. Keep it short: a name outside code needs belongs in the face."""


@dataclass(frozen=True)
class Face:
    """One package's face, read from its ``__init__.py`` without importing it."""

    package: str
    names: dict[str, tuple[str, str]]
    """Face name -> (module it is imported from, its name there)."""
    modules: frozenset[str]
    """Submodules the face makes public (imported in ``__init__`` and in ``__all__``)."""
    all: tuple[str, ...]
    submodules: frozenset[str]
    """Every submodule and subpackage of the package."""

    @property
    def dotted(self) -> str:
        return f"pumpd.{self.package}"

    def private(self, submodule: str) -> bool:
        return submodule in self.submodules and submodule not in self.modules


@dataclass(frozen=True)
class Reach:
    """An import, outside ``package``, of one of its private modules."""

    path: str
    line: int
    package: str
    module: str
    """The private module reached, dotted (``pumpd.audit.store``)."""
    names: tuple[tuple[str, str | None], ...]
    """The names imported from it (name, as-name); empty for ``import pumpd.X.y``."""
    kind: str
    """``from`` (from the module), ``import`` (import of the module itself) or
    ``through-package`` (``from pumpd.X import private_module``)."""
    node: ast.stmt


def read_face(root: Path, package: str) -> Face:
    directory = root / "pumpd" / package
    init = directory / "__init__.py"
    tree = ast.parse(init.read_text(), str(init))
    dotted = f"pumpd.{package}"
    names: dict[str, tuple[str, str]] = {}
    modules: set[str] = set()
    all_names: tuple[str, ...] = ()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == dotted:
                modules.update(a.asname or a.name for a in node.names)
            elif node.module.startswith(dotted + "."):
                for a in node.names:
                    names[a.asname or a.name] = (node.module, a.name)
        elif (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            all_names = tuple(
                e.value
                for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            )
    submodules = {p.stem for p in directory.glob("*.py") if p.name != "__init__.py"}
    submodules |= {p.parent.name for p in directory.glob("*/__init__.py")}
    return Face(package, names, frozenset(modules), all_names, frozenset(submodules))


def read_faces(root: Path) -> dict[str, Face]:
    return {package: read_face(root, package) for package in PACKAGES}


def python_files(root: Path) -> Iterator[Path]:
    for top in ROOTS:
        base = root / top
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*.py") if ".venv" not in p.parts)


def insiders(relative: str) -> frozenset[str]:
    """The packages whose private modules the file at ``relative`` may import: the one it
    is in (``pumpd/<package>/``) or whose own tests it is (``tests/<package>/``)."""
    parts = relative.split("/")
    if len(parts) > 2 and parts[0] in ("pumpd", "tests") and parts[1] in PACKAGES:
        return frozenset({parts[1]})
    return frozenset()


def absolute(relative: str, node: ast.ImportFrom) -> str | None:
    """The dotted module an ``ImportFrom`` names, relative imports resolved."""
    if node.level == 0:
        return node.module
    parts = relative.removesuffix(".py").split("/")[:-1]  # the file's package
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    if not parts:
        return None
    return ".".join([*parts, *([node.module] if node.module else [])])


def reaches(
    root: Path, path: Path, faces: dict[str, Face], *, white_box: bool = False
) -> list[Reach]:
    """Every import in ``path`` of a private module of a package it is not inside (with
    ``white_box``, also those :data:`WHITE_BOX` allows)."""
    relative = path.relative_to(root).as_posix()
    inside = insiders(relative)
    tree = ast.parse(path.read_text(), relative)
    found: list[Reach] = []

    def split(dotted: str) -> tuple[Face, str] | None:
        parts = dotted.split(".")
        if len(parts) < 3 or parts[0] != "pumpd" or parts[1] not in faces:
            return None
        if parts[1] in inside:
            return None
        face = faces[parts[1]]
        return (face, parts[2]) if face.private(parts[2]) else None

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = absolute(relative, node)
            if module is None:
                continue
            hit = split(module)
            if hit is not None:
                face, _ = hit
                names = tuple((a.name, a.asname) for a in node.names)
                found.append(
                    Reach(relative, node.lineno, face.package, module, names, "from", node)
                )
                continue
            parts = module.split(".")
            if len(parts) == 2 and parts[0] == "pumpd" and parts[1] in faces:
                if parts[1] in inside:
                    continue
                face = faces[parts[1]]
                for a in node.names:
                    if face.private(a.name) and a.name not in face.names:
                        found.append(
                            Reach(
                                relative,
                                node.lineno,
                                face.package,
                                f"{module}.{a.name}",
                                ((a.name, a.asname),),
                                "through-package",
                                node,
                            )
                        )
        elif isinstance(node, ast.Import):
            for a in node.names:
                hit = split(a.name)
                if hit is not None:
                    face, _ = hit
                    found.append(
                        Reach(relative, node.lineno, face.package, a.name, (), "import", node)
                    )
    return [r for r in found if white_box or (r.path, private_module(r.module)) not in WHITE_BOX]


def private_module(dotted: str) -> str:
    """``pumpd.audit.store.x`` -> ``pumpd.audit.store``: the package's module reached."""
    return ".".join(dotted.split(".")[:3])


def own_face_imports(root: Path, path: Path, faces: dict[str, Face]) -> list[tuple[str, int, str]]:
    """Imports of a package's own face from inside it (``from pumpd.audit import X`` in
    ``pumpd/audit/``): the face imports the package's modules, so a module that imports
    the face back can be caught half-initialised. Submodules taken through the package
    (``from pumpd.audit import migrate``) are plain module imports and are fine."""
    relative = path.relative_to(root).as_posix()
    parts = relative.split("/")
    if len(parts) < 3 or parts[0] != "pumpd" or parts[1] not in faces or parts[2] == "__init__.py":
        return []
    face = faces[parts[1]]
    out: list[tuple[str, int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), relative)):
        if isinstance(node, ast.ImportFrom) and absolute(relative, node) == face.dotted:
            out.extend(
                (relative, node.lineno, a.name) for a in node.names if a.name not in face.submodules
            )
    return out


def face_name(face: Face, module: str, name: str, root: Path) -> str | None:
    """The face's name for ``module.name``, or None if the face does not export it.

    A name the face imports from another module than the caller's (a re-export) is
    followed by importing both and comparing the objects, if the ``pumpd`` importable
    here is the one under ``root``."""
    for exported, origin in face.names.items():
        if origin == (module, name):
            return exported
    try:
        package = importlib.import_module(face.dotted)
        if not Path(str(package.__file__)).resolve().is_relative_to(root):
            return None
        target = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    for exported in face.names:
        if getattr(package, exported, None) is target:
            return exported
    return None


@dataclass(frozen=True)
class Plan:
    reach: Reach
    rewritten: tuple[tuple[str, str | None], ...]
    """(face name, as-name) moved to the face import."""
    left: tuple[tuple[str, str | None], ...]
    """Names left on the private import: the face does not export them."""
    why: str | None
    """Why (part of) the statement cannot be rewritten, or None."""
    by_hand: bool = False
    """The whole statement is left for a person (comments inside it)."""


def plan(reach: Reach, face: Face, source_lines: list[str], root: Path) -> Plan:
    if reach.kind == "import":
        return Plan(reach, (), (), f"`import {reach.module}`: use `from {face.dotted} import ...`")
    if reach.kind == "through-package":
        return Plan(
            reach, (), reach.names,
            f"`{reach.module}` is a private module: import the names it needs from "
            f"`{face.dotted}`",
        )  # fmt: skip
    node = reach.node
    assert isinstance(node, ast.ImportFrom)
    moved: list[tuple[str, str | None]] = []
    left: list[tuple[str, str | None]] = []
    for name, asname in reach.names:
        exported = None if name == "*" else face_name(face, reach.module, name, root)
        if exported is None:
            left.append((name, asname))
        else:
            moved.append(
                (exported, asname if asname is not None else (name if exported != name else None))
            )
    why = None
    if left:
        why = (
            f"not in the face of {face.dotted}: {', '.join(n for n, _ in left)} (add it to "
            f"pumpd/{face.package}/__init__.py if outside code should have it; a test of "
            f"the package's insides belongs in tests/{face.package}/)"
        )
    if moved and has_comment(source_lines, node):
        by_hand = "comments inside the statement: rewrite it by hand"
        return Plan(reach, tuple(moved), tuple(left), f"{why}; {by_hand}" if why else by_hand, True)
    return Plan(reach, tuple(moved), tuple(left), why)


def describe(p: Plan, faces: dict[str, Face]) -> str:
    """What a person reads about one reach: where, which private module, what to use."""
    r = p.reach
    face = faces[r.package]
    text = f"{r.path}:{r.line}: imports {r.module}, private to {face.dotted}"
    if p.rewritten:
        text += f"; use `{statement(face.dotted, p.rewritten)}`"
    if p.why is not None:
        text += f"; {p.why}"
    return text


def has_comment(lines: list[str], node: ast.stmt) -> bool:
    assert node.end_lineno is not None
    text = "".join(lines[node.lineno - 1 : node.end_lineno])
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    try:
        return any(t.type == tokenize.COMMENT for t in tokens)
    except tokenize.TokenError:
        return True


def statement(module: str, names: Iterable[tuple[str, str | None]]) -> str:
    parts = [
        name if asname is None or asname == name else f"{name} as {asname}"
        for name, asname in names
    ]
    return f"from {module} import {', '.join(parts)}"


def rewrite(path: Path, plans: list[Plan], faces: dict[str, Face]) -> bool:
    """Apply the plans for one file, bottom up; True if the file changed."""
    lines = path.read_text().splitlines(keepends=True)
    changed = False
    for p in sorted(plans, key=lambda p: p.reach.node.lineno, reverse=True):
        if not p.rewritten or p.by_hand:
            continue
        node = p.reach.node
        assert node.end_lineno is not None
        assert node.end_col_offset is not None
        first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
        head, tail = first[: node.col_offset], last[node.end_col_offset :]
        if head.strip() or tail.strip():
            continue  # shares its line with other code: left for a person (reported)
        indent = head
        new = [indent + statement(faces[p.reach.package].dotted, p.rewritten) + "\n"]
        if p.left:
            new.append(indent + statement(p.reach.module, p.left) + "\n")
        lines[node.lineno - 1 : node.end_lineno] = new
        changed = True
    if changed:
        path.write_text("".join(lines))
    return changed


def tidy(root: Path, paths: list[Path]) -> None:
    """Merge and sort the rewritten imports and format the files, as the project's ruff."""
    if not paths:
        return
    files = [str(p.relative_to(root)) for p in paths]
    for args in (["check", "--select", "I", "--fix", "--quiet"], ["format", "--quiet"]):
        try:
            subprocess.run([sys.executable, "-m", "ruff", *args, *files], cwd=root, check=False)
        except OSError as exc:  # pragma: no cover - ruff missing: the files stay correct
            print(f"ruff not run ({exc}); run `ruff check --select I --fix` yourself")
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the files")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    faces = read_faces(root)
    changed: list[Path] = []
    remaining = 0
    for path in python_files(root):
        found = reaches(root, path, faces)
        if not found:
            continue
        lines = path.read_text().splitlines(keepends=True)
        plans = [plan(r, faces[r.package], lines, root) for r in found]
        for p in plans:
            r = p.reach
            if p.rewritten and not p.by_hand:
                verb = "rewrote" if args.write else "would rewrite"
                new = statement(faces[r.package].dotted, p.rewritten)
                print(f"{r.path}:{r.line}: {verb} to `{new}`")
            if p.why is not None:
                remaining += 1
                print(describe(p, faces))
        if args.write and rewrite(path, plans, faces):
            changed.append(path)
    if args.write:
        tidy(root, changed)
        # A statement sharing its line with other code is not rewritten: count it now.
        left = [r for path in changed for r in reaches(root, path, faces) if r.kind == "from"]
        for r in left:
            p = plan(r, faces[r.package], path_lines(root, r.path), root)
            if p.rewritten and not p.by_hand:
                remaining += 1
                print(f"{r.path}:{r.line}: not rewritten (shares its line with other code)")
    print(f"{len(changed)} file(s) rewritten, {remaining} import(s) left for a person")
    return 1 if remaining else 0


def path_lines(root: Path, relative: str) -> list[str]:
    return (root / relative).read_text().splitlines(keepends=True)


if __name__ == "__main__":
    sys.exit(main())
