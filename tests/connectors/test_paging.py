"""Paging we do ourselves: token paging refuses a repeated token; an expired cursor restarts the listing."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.errors import FatalError, IteratorExpired
from connectors.paging import iter_pages, restarting


def test_pages_follow_the_token_until_it_is_absent():
    pages = {None: {"items": [1], "next": "b"}, "b": {"items": [2], "next": "c"}, "c": {"items": [3]}}

    assert [p["items"] for p in iter_pages("tracker", pages.__getitem__, "next")] == [[1], [2], [3]]


def test_a_repeated_token_stops_the_paging():
    pages = {None: {"next": "b"}, "b": {"next": "c"}, "c": {"next": "b"}}

    with pytest.raises(FatalError, match="page token 'b' twice"):
        list(iter_pages("tracker", pages.__getitem__, "next"))


def test_fresh_tokens_on_pages_that_bring_nothing_stop_after_three():
    fetched: list[str | None] = []

    def endless(token: str | None) -> dict:
        fetched.append(token)  # a new token every time, never an issue
        return {"issues": [], "nextPageToken": f"t{len(fetched)}"}

    with pytest.raises(FatalError, match="3 pages in a row brought no new issues but a new page token"):
        list(iter_pages("jira", endless, "nextPageToken", items_key="issues"))
    assert fetched == [None, "t1", "t2"]


def test_the_same_page_under_new_tokens_stops_but_one_empty_page_does_not():
    served: list[str | None] = []

    def same(token: str | None) -> dict:
        served.append(token)
        return {"issues": [{"id": "1"}], "nextPageToken": f"t{len(served)}"}

    with pytest.raises(FatalError, match="3 pages in a row"):
        list(iter_pages("jira", same, "nextPageToken", items_key="issues"))
    assert len(served) == 4  # the first page is new; three repeats of it stop the paging
    pages = {None: {"issues": [1], "next": "b"}, "b": {"issues": [], "next": "c"}, "c": {"issues": [2]}}
    assert [p["issues"] for p in iter_pages("jira", pages.__getitem__, "next", items_key="issues")] == [[1], [], [2]]


class Cursor:
    """A listing of 1..9 in pages of 3 whose server cursor expires after the pages in ``expire_after``."""

    def __init__(self, expire_after: list[int]) -> None:
        self.expire_after = expire_after
        self.starts: list[int] = []

    def listing(self, start: int) -> Iterator[list[int]]:
        self.starts.append(start)
        served = 0
        for first in range(start, 10, 3):
            if self.expire_after and served == self.expire_after[0]:
                self.expire_after.pop(0)
                raise IteratorExpired("the cursor expired")
            served += 1
            yield list(range(first, min(first + 3, 10)))


def test_an_expired_cursor_restarts_the_listing_from_where_its_caller_got_to():
    cursor = Cursor(expire_after=[1, 1])
    seen: list[int] = []

    def after_seen() -> Iterator[list[int]]:
        return cursor.listing(seen[-1] + 1 if seen else 1)

    for page in restarting(after_seen, IteratorExpired):
        seen.extend(page)

    assert seen == list(range(1, 10))
    assert cursor.starts == [1, 4, 7]


def test_a_cursor_that_keeps_expiring_gives_up_after_the_restarts_allowed():
    cursor = Cursor(expire_after=[0, 0, 0, 0])

    with pytest.raises(FatalError, match="gave up"):
        list(restarting(lambda: cursor.listing(1), IteratorExpired, restarts=3, gave_up=lambda: FatalError("tracker", "gave up")))

    assert cursor.starts == [1, 1, 1, 1]  # the first listing and three restarts


def test_without_a_gave_up_error_the_last_expiry_is_raised():
    cursor = Cursor(expire_after=[0, 0])

    with pytest.raises(IteratorExpired):
        list(restarting(lambda: cursor.listing(1), IteratorExpired, restarts=1))


def test_other_errors_are_not_restarts():
    def broken() -> Iterator[int]:
        yield 1
        raise KeyError("boom")

    listing = restarting(broken, IteratorExpired)

    assert next(listing) == 1
    with pytest.raises(KeyError):
        next(listing)
