"""Write the layer diagram in docs/architecture.md from LAYERS in tests/test_layering.py.

    python scripts/layer_diagram.py           # rewrite the diagram between its markers
    python scripts/layer_diagram.py --check   # exit 1 when the page's diagram is stale
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- layers: written by scripts/layer_diagram.py -->", "<!-- /layers -->"
WIDTH = 92


def short(entry: str) -> str:
    """A layer's entry as the page shows it: a package as its folder (`outbox/`), a module by name."""
    if entry == "reminders":
        return "reminders (the package)"
    name = entry.removeprefix("reminders.")
    return f"{name}/" if (ROOT / "reminders" / name).is_dir() else name


def shown(members: tuple[str, ...]) -> list[str]:
    return [short(member) for member in members]


def diagram(layers) -> str:
    inner = WIDTH - 4
    boxes = []
    for number, (title, members) in reversed(list(enumerate(layers, start=1))):
        head = f" {number}. {title} ".center(WIDTH - 2, "-")
        lines = textwrap.wrap(", ".join(shown(members)), inner, break_on_hyphens=False)
        boxes.append("\n".join([f"+{head}+", *(f"| {line.ljust(inner)} |" for line in lines), "+" + "-" * (WIDTH - 2) + "+"]))
    arrow = "\n" + " " * (WIDTH // 2) + "v\n"
    return "```\n" + arrow.join(boxes) + "\n```"


def written(page: str, layers) -> str:
    before, rest = page.split(BEGIN, 1)
    _old, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{diagram(layers)}\n{END}{after}"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.test_layering import LAYERS

    page = PAGE.read_text(encoding="utf-8")
    wanted = written(page, LAYERS)
    if "--check" in argv:
        if wanted != page:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python scripts/layer_diagram.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
