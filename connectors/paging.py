"""Token paging with loop detection, for the APIs we page ourselves."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from connectors.errors import FatalError


def iter_pages(
    system: str, fetch: Callable[[str | None], dict[str, Any]], token_key: str
) -> Iterator[dict[str, Any]]:
    """Yield response pages, following ``token_key`` until it is absent.

    A token seen before means the server is looping; that is an error, never an
    endless run.
    """
    seen: set[str] = set()
    token: str | None = None
    while True:
        page = fetch(token)
        yield page
        token = page.get(token_key)
        if not token:
            return
        if token in seen:
            raise FatalError(system, f"the API returned page token {token[:40]!r} twice; stopping")
        seen.add(token)
