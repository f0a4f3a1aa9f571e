"""docs/: every relative link lands on a file and, with a fragment, on a heading; every test a page cites
as proof exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(["README.md", *(path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").glob("*.md"))])
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Pages others write: a link to one is checked once this checkout has it.
LINKED_ELSEWHERE = {"docs/configuration.md", "docs/architecture.md", "CHANGELOG.md"}


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_lands(page: str) -> None:
    source = ROOT / page
    for target in LINK.findall(source.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        resolved = (source.parent / path).resolve() if path else source
        name = resolved.relative_to(ROOT).as_posix()
        if name in LINKED_ELSEWHERE and not resolved.exists():
            continue
        assert resolved.exists(), f"{page}: {target} names no file"
        if fragment:
            assert fragment in anchors(resolved.read_text()), f"{page}: {target} names no heading"


def test_anchors_follow_githubs_rule() -> None:
    assert anchors("## `upsert_log_score`\n### Many scores at once\n## `self_grade` (prompt)\n") == {
        "upsert_log_score", "many-scores-at-once", "self_grade-prompt"}


def defined_tests() -> set[tuple[str, str]]:
    """(path under tests/, test name) for every test in every tier."""
    return {(path.relative_to(ROOT / "tests").as_posix(), name) for path in (ROOT / "tests").rglob("test_*.py")
            for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M)}


@pytest.mark.parametrize("page", ["docs/guarantees.md", "docs/team.md"])
def test_every_test_a_page_cites_exists(page: str) -> None:
    text = (ROOT / page).read_text()
    files = {path.relative_to(ROOT / "tests").as_posix() for path in (ROOT / "tests").rglob("*.py")}
    tests = defined_tests()
    for paragraph in text.split("\n\n"):
        cited_files = re.findall(r"`tests/((?:\w+/)*\w+\.py)`", paragraph)
        assert set(cited_files) <= files, (page, set(cited_files) - files)
        for name in re.findall(r"`(test_\w+)`", paragraph):
            assert any((file, name) in tests for file in cited_files), f"{page}: {name} is in none of {cited_files}"
