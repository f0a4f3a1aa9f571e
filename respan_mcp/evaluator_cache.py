"""Evaluators by id and by slug, cached per API key: it only caches.

Respan describes every platform evaluator (type, range, choices, rubric), so a score can
be checked against it before writing. Lookups are cached per API key (callers never see
each other's evaluators), with a TTL and a size bound, and concurrent lookups of one
evaluator share one request. What a lookup means for a write is `writes.py`'s business;
the request itself is the client's.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import anyio

from respan_mcp.client import Caller, RespanClient
from respan_mcp.errors import RespanError, refuses_key
from respan_mcp.evaluator import Evaluator

# A failed lookup is retried after this long (or the TTL, if shorter): long enough not to add a
# request to every write during an outage, short enough that checks resume soon after.
FAILED_LOOKUP_TTL = 10.0

Ref = tuple[str | None, str | None]  # (evaluator_id, evaluator_slug), as a score or a write names its evaluator


class EvaluatorCache:
    """Evaluators by id and by slug, per API key, with a TTL and a size bound.

    Concurrent lookups of the same evaluator share one request. A slug that no
    platform evaluator has is cached as None: it is a custom score, checked by the
    core rules only.
    """

    def __init__(self, client: RespanClient, *, ttl: float, max_entries: int = 512) -> None:
        self.client = client
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, Evaluator | RespanError | None]] = OrderedDict()
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self.lookups = 0  # requests made, for tests and the log

    async def many(self, refs: Iterable[Ref], caller: Caller) -> dict[Ref, Evaluator | None | RespanError]:
        """Each (evaluator_id, evaluator_slug) looked up at once: the evaluator, None when no evaluator has it,
        or the RespanError that kept Respan from answering. Never raises a RespanError itself."""
        answers: dict[Ref, Evaluator | None | RespanError] = {}

        async def one(ref: Ref) -> None:
            try:
                answers[ref] = await self.lookup(ref, caller)
            except RespanError as exc:
                answers[ref] = exc

        distinct = list(dict.fromkeys(refs))
        async with anyio.create_task_group() as group:
            for ref in distinct:
                group.start_soon(one, ref)
        return {ref: answers[ref] for ref in distinct}  # in the order asked, not the order answered

    async def lookup(self, ref: Ref, caller: Caller) -> Evaluator | None:
        """The evaluator a ref names (its id, else its slug), or None when no platform evaluator has it.

        Raises the RespanError that kept Respan from answering; such a failure is remembered for a
        short while (FAILED_LOOKUP_TTL), so an outage costs one request per evaluator, not one per call.
        """
        evaluator_id, slug = ref
        kind, value = ("id", evaluator_id) if evaluator_id else ("slug", slug)
        if not value:
            return None
        key = (self._key_id(caller), kind, value)
        for _ in range(3):  # another caller's lookup is awaited; if it was cancelled, try again
            cached = self._entries.get(key)
            if cached is not None and cached[0] > time.monotonic():
                self._entries.move_to_end(key)
                if isinstance(cached[1], RespanError):
                    raise cached[1].with_traceback(None)
                return cached[1]
            pending = self._pending.get(key)
            if pending is None:
                return await self._lead(key, kind, value, caller)
            answer = await pending.wait()
            if answer is not _ABANDONED:
                return answer  # type: ignore[no-any-return]
        return await self._lead(key, kind, value, caller)

    def remember(self, evaluators: Iterable[Evaluator], caller: Caller) -> None:
        """Evaluators an agent just listed: it will likely score with them next."""
        key_id = self._key_id(caller)
        for evaluator in evaluators:
            if evaluator.id:
                self._store((key_id, "id", evaluator.id), evaluator)
            if evaluator.whole_slug:
                self._store((key_id, "slug", evaluator.whole_slug), evaluator)

    async def _lead(self, key: tuple[str, str, str], kind: str, value: str, caller: Caller) -> Evaluator | None:
        """Look the evaluator up for every caller waiting on `key`; whatever happens, they are released."""
        pending = self._pending[key] = _Pending()
        try:
            self.lookups += 1
            # One try: a lookup serves a call and must never hold it up with retries of its own.
            data = await self.client.find_evaluator(caller, kind, value, self.client.retry.once())
            evaluator = Evaluator.from_api(data) if data is not None else None
        except RespanError as exc:
            if not refuses_key(exc):  # a refused key is not the evaluator's fault: ask again next time
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

    def _store(self, key: tuple[str, str, str], evaluator: Evaluator | RespanError | None, ttl: float | None = None) -> None:
        self._entries[key] = (time.monotonic() + (self.ttl if ttl is None else ttl), evaluator)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    @staticmethod
    def _key_id(caller: Caller) -> str:
        """Entries are keyed by a hash of the caller's key, never by the key itself."""
        return hashlib.sha256(caller.key.encode()).hexdigest()[:16]


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
