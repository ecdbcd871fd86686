"""The documentation: a README a newcomer reads to the end, and a MkDocs site whose links hold."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def test_the_site_builds_with_every_link_and_anchor_resolved(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").exists()


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    assert "pip install -e . && reminders run" in text
    assert "scripts/test" in text
    first_heading = next(line for line in text.splitlines() if line.startswith("## "))
    assert first_heading == "## The two commands"


def test_every_docs_page_is_in_the_navigation():
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(entries):
        for entry in entries:
            for value in (entry.values() if isinstance(entry, dict) else [entry]):
                yield from (pages(value) if isinstance(value, list) else [value])

    listed = set(pages(config["nav"]))
    written = {str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md")}
    assert written == listed


def test_the_settings_reference_is_current():
    result = subprocess.run([sys.executable, "scripts/settings_reference.py", "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layer_diagram_is_current():
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "layer_diagram.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
