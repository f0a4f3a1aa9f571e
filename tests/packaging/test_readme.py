"""The README is the front door: short, the two set-up commands, links to every docs page, and nothing
about how the work on it was organised. Its host blocks are checked in tests/packaging/test_host_blocks.py, its tool
table in tests/packaging/test_docs_tools.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "docs").glob("*.md"))
# Pages others write; the README links them whether or not this checkout has them yet.
LINKED_ELSEWHERE = {"docs/configuration.md", "docs/architecture.md", "CHANGELOG.md"}


def test_the_readme_reads_in_minutes() -> None:
    assert len(README.encode()) <= 15_500


def test_the_two_set_up_commands_install_and_run_the_server_then_the_tests() -> None:
    setup = README.split("## Set up\n", 1)[1].split("\n## ", 1)[0]
    install, tests = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    first, *with_a_key = install.splitlines()
    assert first == (
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/respan-mcp --sandbox --transport streamable-http"
    )
    assert with_a_key[-1] == "# RESPAN_API_KEY=<your key> .venv/bin/respan-mcp --transport streamable-http"
    assert tests == ".venv/bin/pip install '.[test]' && .venv/bin/python -m pytest"


@pytest.mark.parametrize("page", [*DOCS, *sorted(LINKED_ELSEWHERE)])
def test_the_readme_links_every_docs_page(page: str) -> None:
    assert f"]({page})" in README


def test_the_readme_has_three_host_sections_and_a_configuration_link() -> None:
    hosts = README.split("## Connect it to your host\n", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^\*\*(.+?)\*\*", hosts, re.M)[:3] == ["Claude Desktop", "Claude Code", "A shared HTTP endpoint"]
    assert "[docs/configuration.md](docs/configuration.md)" in README.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]


WORK_NOTES = re.compile(r"\bissue \d|\bthe lead\b|\bredesign\b|\bhelper\b|\bworktree\b|\bbrief\b", re.I)


@pytest.mark.parametrize("page", ["README.md", *DOCS])
def test_no_page_talks_about_how_the_work_was_organised(page: str) -> None:
    assert WORK_NOTES.findall((ROOT / page).read_text()) == []


def test_the_work_notes_check_can_fail() -> None:
    assert WORK_NOTES.findall("Targets (issue 15.10): the lead re-runs it after the redesign")
