"""``python -m pumpd.session --diagram [PATH]``: write the generated state diagram.

``--check`` compares instead of writing and exits 1 when the file is out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .diagram import document

DEFAULT = Path(__file__).resolve().parents[2] / "docs" / "session-diagram.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pumpd.session")
    parser.add_argument("--diagram", action="store_true", help="write the mermaid diagram")
    parser.add_argument("--check", action="store_true", help="only check it is up to date")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    args = parser.parse_args(argv)
    if not args.diagram:
        parser.print_help()
        return 2
    text = document()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run python -m pumpd.session --diagram")
            return 1
        return 0
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
