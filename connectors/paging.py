"""Token paging with loop detection, and listings restarted when the server drops its cursor."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from connectors.errors import FatalError

T = TypeVar("T")


STALLED_PAGES = 3
"""Pages in a row that bring nothing new (empty, or the previous page again) before paging stops."""


def iter_pages(
    system: str, fetch: Callable[[str | None], dict[str, Any]], token_key: str, *, items_key: str | None = None
) -> Iterator[dict[str, Any]]:
    """Yield response pages, following ``token_key`` until it is absent.

    A token seen before means the server is looping; that is an error, never an
    endless run. With ``items_key`` (the list each page holds), fresh tokens on pages
    that bring nothing new, ``STALLED_PAGES`` in a row, are the same loop in disguise.
    """
    seen: set[str] = set()
    token: str | None = None
    previous: list[Any] | None = None
    stalled = 0
    while True:
        page = fetch(token)
        yield page
        token = page.get(token_key)
        if not token:
            return
        if token in seen:
            raise FatalError(system, f"the API returned page token {token[:40]!r} twice; stopping")
        seen.add(token)
        if items_key is not None:
            items = page.get(items_key) or []
            stalled = stalled + 1 if not items or items == previous else 0
            previous = items
            if stalled >= STALLED_PAGES:
                raise FatalError(
                    system, f"{stalled} pages in a row brought no new {items_key} but a new page token; stopping"
                )


def restarting(
    listing: Callable[[], Iterator[T]],
    expired: type[Exception],
    *,
    restarts: int | None = None,
    gave_up: Callable[[], Exception] | None = None,
) -> Iterator[T]:
    """Yield what ``listing()`` yields, calling it afresh whenever it raises ``expired`` (the server dropped its cursor).

    ``listing`` reads its start from its caller's state, so a restart can begin after
    what was already yielded. After ``restarts`` restarts (None: no limit) the next
    expiry raises ``gave_up()``, or the expiry itself.
    """
    done = 0
    while True:
        try:
            yield from listing()
            return
        except expired as error:
            if restarts is not None and done >= restarts:
                raise (gave_up() if gave_up else error) from None
            done += 1
