"""The size rules a maintainer relies on, held by the suite rather than by memory.

No module of the daemon or of the safety kernel grows past 600 lines, and no class of the
controller holds more than 12 instance fields (docs/architecture.md, "Rooms"): past those
sizes a room starts to do more than one job, and the next change goes in where it is
easiest, not where it belongs.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 600
MAX_CONTROLLER_FIELDS = 12


def instance_fields(cls: ast.ClassDef) -> set[str]:
    """Names a class keeps per instance: its annotated class-level fields (dataclasses)
    and every ``self.<name>`` any of its methods assigns."""
    names = {
        item.target.id
        for item in cls.body
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
    }
    for node in ast.walk(cls):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                names.add(target.attr)
    return names


def test_no_daemon_or_kernel_module_is_over_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for package in ("pumpd", "safety")
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these by their jobs: {long}"


def test_no_controller_class_holds_more_than_12_fields() -> None:
    crowded: dict[str, list[str]] = {}
    for path in sorted((ROOT / "pumpd" / "controller").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names = instance_fields(node)
                if len(names) > MAX_CONTROLLER_FIELDS:
                    crowded[f"{path.name}::{node.name}"] = sorted(names)
    assert crowded == {}, f"give these a collaborator: {crowded}"


def test_the_field_count_sees_assignments_in_any_method() -> None:
    source = (
        "class C:\n"
        "    a: int\n"
        "    def __init__(self):\n"
        "        self.b = 1\n"
        "        self.b = 2\n"
        "    def later(self):\n"
        "        self.c: int = 3\n"
        "        self.d += 1\n"
        "        other.e = 4\n"
    )
    cls = ast.parse(source).body[0]
    assert isinstance(cls, ast.ClassDef)
    assert instance_fields(cls) == {"a", "b", "c", "d"}
