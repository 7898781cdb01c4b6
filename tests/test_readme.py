"""The README a newcomer reads: short, its test command the one CI runs, and every page it links exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# Written by another change (the reference case's own page); drop this entry once it is merged.
PENDING_PAGES: set[str] = set()  # pages linked before they are written (none now)


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 300


def test_the_readme_test_command_is_what_ci_runs():
    command = 'pip install -e ".[cpu,space,dev]" && python -m pytest -q'
    assert f"```bash\n{command}\n```" in README
    assert (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip().splitlines()[-1] == command


def test_every_linked_page_exists_and_links_back():
    links = set(re.findall(r"\]\((docs/[^)#]+)\)", README))
    assert {"docs/recipes.md", "docs/reference-case.md", "docs/uncertainty.md", "docs/benchmarks.md"} <= links
    for link in sorted(links - PENDING_PAGES):
        page = ROOT / link
        assert page.is_file(), link
        assert "(../README.md)" in page.read_text(encoding="utf-8"), f"{link} has no link back to the README"
    on_disk = {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")}
    assert on_disk <= links, f"pages the README does not link: {sorted(on_disk - links)}"
