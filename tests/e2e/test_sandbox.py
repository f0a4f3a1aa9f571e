"""`respan-mcp --sandbox` over stdio, as a new user runs it: no key, no network, data kept in a SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import console_script

pytestmark = [pytest.mark.slow, pytest.mark.anyio]
LOG = "sandbox-log-refund-answer"


def sandbox_env(home: Path) -> dict[str, str]:
    """No key, no credentials file, no base URL: only a home of its own."""
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}


def server(home: Path) -> StdioServerParameters:
    return StdioServerParameters(command=console_script(), args=["--sandbox"], env=sandbox_env(home))


async def tool(client: Client, name: str, arguments: dict[str, Any]) -> Any:
    return await client.call_tool(name, arguments)


async def test_the_sandbox_serves_the_whole_grading_loop_and_keeps_its_data(tmp_path: Path) -> None:
    async with Client(server(tmp_path)) as client:
        assert "sandbox" in (client.instructions or "")
        evaluators = (await tool(client, "list_evaluators", {})).structured_content["evaluators"]
        assert len(evaluators) >= 3
        logs = (await tool(client, "find_logs", {})).structured_content["logs"]
        assert len(logs) >= 3
        read = (await tool(client, "get_log", {"log_id": LOG})).structured_content
        assert read["input"] and read["output"]
        out_of_range = await tool(client, "upsert_log_score", {"log_id": LOG, "evaluator_slug": "answer_quality",
                                                                "numerical_value": 9})
        assert out_of_range.is_error and "1 and 5" in out_of_range.content[0].text
        wrong_field = await tool(client, "upsert_log_score", {"log_id": LOG, "evaluator_slug": "is_safe",
                                                               "numerical_value": 1})
        assert wrong_field.is_error and "boolean_value" in wrong_field.content[0].text
        first = await tool(client, "upsert_log_score", {"log_id": LOG, "evaluator_slug": "answer_quality",
                                                         "numerical_value": 4})
        again = await tool(client, "upsert_log_score", {"log_id": LOG, "evaluator_slug": "answer_quality",
                                                         "numerical_value": 5})
        assert not first.is_error and not again.is_error, (first.content, again.content)
        score_id = first.structured_content["id"]
        assert again.structured_content["id"] == score_id  # the second upsert updated the same score
        updated = await tool(client, "update_score", {"score_id": score_id, "numerical_value": 3})
        assert not updated.is_error and updated.structured_content["numerical_value"] == 3
        assert (await tool(client, "get_score", {"score_id": score_id})).structured_content["numerical_value"] == 3
        batch = await tool(client, "upsert_log_scores", {"scores": [
            {"log_id": LOG, "evaluator_slug": "is_safe", "boolean_value": True},
            {"log_id": LOG, "evaluator_slug": "tone", "categorical_value": ["friendly"]},
        ]})
        assert batch.structured_content["written"] == 2, batch.content
        prompt = await client.get_prompt("self_grade", {"log_id": LOG, "evaluators": "answer_quality"})
        assert "answer_quality" in prompt.messages[0].content.text
    db = tmp_path / ".local" / "share" / "respan-mcp" / "sandbox.sqlite3"
    assert db.exists() and sqlite3.connect(db).execute("pragma integrity_check").fetchone() == ("ok",)
    async with Client(server(tmp_path)) as client:  # a restart keeps what was written
        kept = await tool(client, "get_score", {"score_id": score_id})
        assert not kept.is_error and kept.structured_content["numerical_value"] == 3
    reset = subprocess.run([console_script(), "--reset-sandbox"], env=sandbox_env(tmp_path), capture_output=True,
                           text=True, timeout=60)
    assert reset.returncode == 0 and str(db) in reset.stdout
    async with Client(server(tmp_path)) as client:
        assert (await tool(client, "get_score", {"score_id": score_id})).is_error  # afresh


def test_the_sandbox_says_so_at_start(tmp_path: Path) -> None:
    done = subprocess.run([console_script(), "--sandbox"], env=sandbox_env(tmp_path), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "sandbox" in done.stderr and "nothing reaches Respan" in done.stderr and "sandbox.sqlite3" in done.stderr
    assert "clear text" not in done.stderr  # the sandbox's base URL is never resolved: no network warning
