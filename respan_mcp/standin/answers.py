"""The shapes of Respan's answers: Django REST Framework error bodies and page-number pages.

Handlers return an `Answer` (status and JSON body) rather than a Starlette response, so the
behaviour reads as the API's and does not depend on the web framework.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlencode

from respan_mcp.standin.store import Record, public


class Answer(NamedTuple):
    status: int
    body: Any  # JSON; None for an empty body (204)


def detail(status: int, message: str) -> Answer:
    """DRF's `{"detail": "..."}`: what its exceptions (404, 401, parse errors) answer."""
    return Answer(status, {"detail": message})


def field_errors(errors: dict[str, list[str]], status: int = 400) -> Answer:
    """DRF's serializer errors: a list of messages per field."""
    return Answer(status, errors)


NOT_FOUND = detail(404, "Not found.")


def paginate(
    items: list[Record],
    query: dict[str, str],
    url: str,
    *,
    default_size: int,
    max_size: int,
) -> Answer:
    """DRF's PageNumberPagination: `page_size` falls back to the default when it is not a positive
    number and is capped at `max_size`; a page that is not a number, or past the last page (page 1
    of nothing excepted), is `{"detail": "Invalid page."}` with 404."""
    try:
        size = int(query.get("page_size", default_size))
    except ValueError:
        size = default_size
    size = min(max_size, size if size > 0 else default_size)
    pages = max(1, -(-len(items) // size))
    try:
        page = int(query.get("page", 1))
    except ValueError:
        return detail(404, "Invalid page.")
    if not 1 <= page <= pages:
        return detail(404, "Invalid page.")
    start = (page - 1) * size

    def link(number: int) -> str:
        return f"{url}?{urlencode(query | {'page': str(number), 'page_size': str(size)})}"

    return Answer(
        200,
        {
            "count": len(items),
            "next": link(page + 1) if page < pages else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [public(item) for item in items[start : start + size]],
        },
    )
