"""Find the evaluator a score is for: by id, or by searching for its exact slug.

Respan describes every platform evaluator (type, range, choices), so the server can
check a score against it before writing (see `evaluator`). Lookups are cached
per API key (callers never see each other's evaluators), with a TTL and a size bound,
and concurrent lookups of one evaluator share one request. A lookup that fails never
blocks a write: the core rules still apply, and the API has the last word.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import anyio

from respan_mcp.client import RespanClient, path_segment
from respan_mcp.errors import MissingAPIKeyError, NotFoundError, RespanError
from respan_mcp.evaluator import Evaluator
from respan_mcp.results import EvaluatorPage, EvaluatorSummary

logger = logging.getLogger(__name__)

SEARCH_PAGE_SIZE = 100
# A failed lookup is retried after this long (or the TTL, if shorter): long enough not to add a
# request to every write during an outage, short enough that checks resume soon after.
FAILED_LOOKUP_TTL = 10.0


class Described(NamedTuple):
    """What was learnt about named evaluators: found, slugs no evaluator has, and whether Respan failed for some."""

    found: list[Evaluator]
    unknown: list[str]
    unreachable: bool


class EvaluatorCache:
    """Evaluators by id and by slug, per API key, with a TTL and a size bound.

    Concurrent lookups of the same evaluator share one request. A slug that no
    platform evaluator has is cached as None: it is a custom score, checked by the
    core rules only.
    """

    def __init__(self, client: RespanClient, *, ttl: float = 300.0, max_entries: int = 512) -> None:
        self.client = client
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, Evaluator | RespanError | None]] = OrderedDict()
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self.lookups = 0  # requests made, for tests and the log

    async def for_write(self, evaluator_id: str | None, slug: str | None, api_key: str | None) -> Evaluator | None:
        """The evaluator a write is for, or None when unknown (custom slug, or the lookup failed).

        Raises only when the key itself is refused (401, or none configured): the write would be too.
        """
        kind, value = ("id", evaluator_id) if evaluator_id else ("slug", slug)
        if not value:
            return None
        try:
            return await self.lookup(kind, value, api_key)
        except RespanError as exc:
            if _refuses_key(exc):
                raise
            return None  # never block a write on a lookup: the core rules apply, and the API has the last word

    async def get(self, evaluator_id: str | None, slug: str | None, api_key: str | None) -> Evaluator:
        """The evaluator with this id or slug, for an agent that asked about it by name.

        Unlike `for_write`, nothing is guessed: an id or slug no evaluator has is a NotFoundError
        that says where to look, and a failed lookup is the RespanError that says why.
        """
        kind, value = ("id", evaluator_id) if evaluator_id else ("slug", slug or "")
        evaluator = await self.lookup(kind, value, api_key)
        if evaluator is None:
            raise NotFoundError(
                f"no evaluator has {kind} '{value}'; list_evaluators shows the evaluators this key can see.", 404
            )
        return evaluator

    async def many(
        self, refs: Iterable[tuple[str | None, str | None]], api_key: str | None
    ) -> dict[tuple[str | None, str | None], Evaluator | None | RespanError]:
        """Each (evaluator_id, evaluator_slug) looked up at once: the evaluator, None when no evaluator has it,
        or the RespanError that kept Respan from answering. Never raises a RespanError itself."""
        answers: dict[tuple[str | None, str | None], Evaluator | None | RespanError] = {}

        async def one(ref: tuple[str | None, str | None]) -> None:
            evaluator_id, slug = ref
            kind, value = ("id", evaluator_id) if evaluator_id else ("slug", slug)
            try:
                answers[ref] = await self.lookup(kind, value, api_key) if value else None
            except RespanError as exc:
                answers[ref] = exc

        distinct = list(dict.fromkeys(refs))
        async with anyio.create_task_group() as group:
            for ref in distinct:
                group.start_soon(one, ref)
        return {ref: answers[ref] for ref in distinct}  # in the order asked, not the order answered

    async def describe(self, slugs: Sequence[str], api_key: str | None) -> Described:
        """What self_grade needs about the evaluators an agent named: the ones found, the slugs no evaluator
        has, and whether Respan could not be asked about some."""
        answers = await self.many([(None, slug) for slug in slugs], api_key)
        found = [answer for answer in answers.values() if isinstance(answer, Evaluator)]
        unknown = [slug for (_, slug), answer in answers.items() if answer is None and slug]
        return Described(found, unknown, any(isinstance(answer, RespanError) for answer in answers.values()))

    async def lookup(self, kind: str, value: str, api_key: str | None) -> Evaluator | None:
        """The evaluator with this id or slug, or None when no platform evaluator has it.

        Raises the RespanError that kept Respan from answering; such a failure is remembered for a
        short while (FAILED_LOOKUP_TTL), so an outage costs one request per evaluator, not one per call.
        """
        key = (self._key_id(api_key), kind, value)
        for _ in range(3):  # another caller's lookup is awaited; if it was cancelled, try again
            cached = self._entries.get(key)
            if cached is not None and cached[0] > time.monotonic():
                self._entries.move_to_end(key)
                if isinstance(cached[1], RespanError):
                    raise cached[1].with_traceback(None)
                return cached[1]
            pending = self._pending.get(key)
            if pending is None:
                return await self._lead(key, kind, value, api_key)
            answer = await pending.wait()
            if answer is not _ABANDONED:
                return answer  # type: ignore[no-any-return]
        return await self._lead(key, kind, value, api_key)

    async def for_score(self, score_id: str, api_key: str | None) -> Evaluator | None:
        """The evaluator of an existing score (update_score sends none): read the score, then its evaluator.

        An unknown score is refused here (the PATCH would be too); any other failure to read it
        leaves the update to the core rules.
        """
        try:
            score = await self.client.get_score(score_id, api_key=api_key, max_retries=0)
        except NotFoundError:
            raise
        except RespanError as exc:
            if _refuses_key(exc):
                raise
            logger.warning("score %r could not be read (%s); checking with the core rules only", score_id, exc)
            return None
        if not isinstance(score, dict):
            return None
        embedded: dict[str, Any] = score["evaluator"] if isinstance(score.get("evaluator"), dict) else {}
        if embedded.get("score_value_type") and _describes_limits(embedded):
            return Evaluator.from_api(embedded)  # complete: no lookup needed
        evaluator_id = score.get("evaluator_id") or embedded.get("id")
        slug = score.get("evaluator_slug") or embedded.get("evaluator_slug")
        evaluator = await self.for_write(evaluator_id, slug, api_key)
        if evaluator is None and embedded.get("score_value_type"):
            return Evaluator.from_api(embedded)  # at least its type
        return evaluator

    async def search(self, search: str | None, page: int, page_size: int, api_key: str | None) -> EvaluatorPage:
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if search:
            params["search"] = search
        data = await self.client.request("GET", "/evaluators/", params=params, api_key=api_key)
        found = [Evaluator.from_api(item) for item in _results(data)]
        key_id = self._key_id(api_key)
        for evaluator in found:  # what an agent just listed, it will likely score with next
            if evaluator.id:
                self._store((key_id, "id", evaluator.id), evaluator)
            if evaluator.slug:
                self._store((key_id, "slug", evaluator.slug), evaluator)
        return EvaluatorPage(
            count=data.get("count", len(found)) if isinstance(data, dict) else len(found),
            evaluators=[EvaluatorSummary.of(e) for e in found],
            next_page=page + 1 if isinstance(data, dict) and data.get("next") else None,
        )

    async def _lead(self, key: tuple[str, str, str], kind: str, value: str, api_key: str | None) -> Evaluator | None:
        """Look the evaluator up for every caller waiting on `key`; whatever happens, they are released."""
        pending = self._pending[key] = _Pending()
        try:
            evaluator = await self._look_up(kind, value, api_key)
        except RespanError as exc:
            if not _refuses_key(exc):  # a refused key is not the evaluator's fault: ask again next time
                self._store(key, exc, min(self.ttl, FAILED_LOOKUP_TTL))
            pending.fail(exc)
            raise
        except Exception as exc:
            pending.fail(exc)
            raise
        except BaseException:
            pending.abandon()  # cancelled: a waiter takes over the lookup
            raise
        finally:
            del self._pending[key]
        self._store(key, evaluator)
        pending.set(evaluator)
        return evaluator

    async def _look_up(self, kind: str, value: str, api_key: str | None) -> Evaluator | None:
        """The evaluator, or None when no platform evaluator has this id or slug (a custom score)."""
        self.lookups += 1
        try:
            if kind == "id":
                try:
                    data = await self.client.request(
                        "GET", f"/evaluators/{path_segment(value)}/", api_key=api_key, max_retries=0,
                        not_found=f"no evaluator has id '{value}'",
                    )
                except NotFoundError:
                    return None
                if not isinstance(data, dict):
                    raise RespanError(
                        f"the Respan API answered without an evaluator for id '{value}'; check that RESPAN_BASE_URL "
                        "points at the Respan API"
                    )
                return Evaluator.from_api(data)
            data = await self.client.request(
                "GET", "/evaluators/", params={"search": value, "page_size": SEARCH_PAGE_SIZE}, api_key=api_key,
                max_retries=0,
            )
        except RespanError as exc:
            if not _refuses_key(exc):
                logger.warning(
                    "evaluator %s %r could not be looked up (%s); writes for it are checked with the core rules only",
                    kind, value, exc,
                )
            raise
        for item in _results(data):
            if item.get("evaluator_slug") == value:
                return Evaluator.from_api(item)
        return None  # no platform evaluator has this slug: a custom score

    def _store(self, key: tuple[str, str, str], evaluator: Evaluator | RespanError | None, ttl: float | None = None) -> None:
        self._entries[key] = (time.monotonic() + (self.ttl if ttl is None else ttl), evaluator)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _key_id(self, api_key: str | None) -> str:
        """Entries are keyed by a hash of the caller's key, never by the key itself."""
        key = api_key or self.client.config.api_key or ""
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def _refuses_key(error: RespanError) -> bool:
    """A refused key (401) or none at all: the write would fail the same way, so say so now.

    A 403 is not: a key may be allowed to write scores without being allowed to read evaluators.
    """
    return isinstance(error, MissingAPIKeyError) or error.status == 401


def _describes_limits(evaluator: dict[str, Any]) -> bool:
    return any(name in evaluator for name in ("score_config", "configurations", "categorical_choices"))


def _results(data: Any) -> list[dict[str, Any]]:
    items = data.get("results", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    return [item for item in items if isinstance(item, dict)]


_ABANDONED = object()


class _Pending:
    """One in-flight lookup that later callers wait on."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set(self, value: Evaluator | None) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def abandon(self) -> None:
        self._value = _ABANDONED
        self._done.set()

    async def wait(self) -> Any:
        """The evaluator (or None), `_ABANDONED` if the lookup was cancelled; re-raises its error."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value
