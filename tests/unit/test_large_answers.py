"""Reading a large answer (a whole log): the key check still finds every piece, and memory stays bounded.

The check lowers UTF-8 with bytes.lower, in parts of about a MiB, instead of the text with
str.translate (character by character through text that is not ASCII); these pin that it still
sees what the old check saw, in text that is not ASCII, across parts and beside lone surrogates.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from respan_mcp import client as routes
from respan_mcp.client import RespanClient
from respan_mcp.config import Config
from respan_mcp.errors import UnexpectedAnswerError
from respan_mcp.results import REDACTION_BATCH

KEY = "rk-LARGE+5c1e/9d20=ab3f.Qx7w"
pytestmark = pytest.mark.anyio

PROSE = "The invoice rose \u2014 three more seats \u2014 and the customer said \u201cthat works\u201d. "


class Chunks(httpx2.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 65536):
            yield self.body[start : start + 65536]


def client_answering(body: bytes, content_type: str = "application/json") -> RespanClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=Chunks(body), headers={"Content-Type": content_type})

    return RespanClient(Config(api_key=KEY, max_retries=0), transport=httpx2.MockTransport(handler))


async def read_log(client: RespanClient) -> Any:
    return await client.send(routes.Caller(key=KEY, secrets=(KEY,)), routes.get_log("log-1"))


def shown(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


@pytest.mark.parametrize(
    "echo",
    [
        KEY.upper()[4:16],  # another letter case
        KEY.lower()[10:20],
        routes.quote(KEY, safe="")[3:14],  # URL-encoded
    ],
)
async def test_a_piece_of_the_key_in_text_that_is_not_ascii_is_cut_out(echo: str) -> None:
    log = {"input": [{"role": "user", "content": PROSE * 50 + echo + PROSE}], "output": PROSE * 50}
    data = await read_log(client_answering(json.dumps(log, ensure_ascii=False).encode()))
    assert echo not in shown(data) and "[API key]" in data["input"][0]["content"]
    assert data["output"] == PROSE * 50  # the rest as it came


async def test_a_piece_past_the_first_part_and_beside_a_lone_surrogate_is_cut_out() -> None:
    fields = [PROSE * (REDACTION_BATCH // len(PROSE) // 4) for _ in range(6)]  # about 1.5 parts of text
    body = json.dumps({"messages": fields, "last": "\\ud800 " + KEY[2:12]}).replace("\\\\ud800", "\\ud800")
    data = await read_log(client_answering(body.encode()))
    assert KEY[2:12] not in shown(data) and data["last"].startswith("\ud800")
    assert data["messages"] == fields


async def test_an_answer_without_a_piece_of_the_key_comes_back_unchanged() -> None:
    log = {"input": PROSE * 100, "metadata": {"plan": "TEAM", "n": 3}, "scores": {"s": {"numerical_value": 4}}}
    assert await read_log(client_answering(json.dumps(log, ensure_ascii=False).encode())) == log


async def test_a_success_that_is_not_json_is_reported_in_its_own_charset() -> None:
    client = client_answering("<p>Anmeldung f\u00fcr Konten</p>".encode("latin-1"), "text/html; charset=latin-1")
    with pytest.raises(UnexpectedAnswerError, match="not JSON") as err:
        await read_log(client)
    assert "f\u00fcr" in str(err.value)


async def test_a_large_log_is_read_holding_few_copies_of_it() -> None:
    """5 MB of prose that is not ASCII (2 bytes a character as text). The text and its parsed form are held
    together while parsing (about 4 times the answer); the bytes, a second copy of the text and the key
    check's copies of it all once came on top (about 9 times)."""
    log = {"input": [{"role": "user", "content": PROSE * 20_000}], "output": PROSE * 40_000}
    body = json.dumps(log, ensure_ascii=False).encode()
    client = client_answering(body)
    tracemalloc.start()
    try:
        data = await read_log(client)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data["output"] == log["output"]
    assert peak < 5 * len(body), peak / len(body)
