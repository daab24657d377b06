"""The Airtable sandbox's real defaults: the rate limit with its penalty, idle iterators, bad offsets.

What each behaviour is modelled on (looked up, not guessed):
- "The API is limited to 5 requests per second per base. If you exceed this rate, you
  will receive a 429 status code and will need to wait 30 seconds before subsequent
  requests will succeed." (Airtable's API docs, quoted in simonw/airtable-export#7; Apache
  NiFi's Airtable processor docs say the same.) On by default here, on the app's clock.
- "Iteration may timeout due to client inactivity or server restarts. In that case, the
  client will receive a 422 response with error message LIST_RECORDS_ITERATOR_NOT_AVAILABLE.
  It may then restart iteration from the beginning." (list records docs, quoted in the
  same issue and in Airtable's community forum). Airtable names no time-out; the sandbox
  forgets an iterator idle for more than 60 seconds.
- An offset that is not an iterator's is refused as
  ``{"error":{"type":"INVALID_OFFSET_VALUE","message":"The value of offset itrZ… is invalid"}}``
  (Airtable community, "Offset value invalid; output does not match API documentation").
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from pyairtable import Api, Table

from sandboxes.airtable.app import ITERATOR_TTL_SECONDS, start_airtable
from sandboxes.clock import ManualTime
from sandboxes.server import RunningSandbox
from tests.sandboxes.conftest import calls, knob

RECORDS, SEED = 250, 7
RATE_LIMITED = {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]}
GONE = {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}


@pytest.fixture
def clock() -> ManualTime:
    """The sandbox's time: it moves only when a test advances it."""
    return ManualTime()


def started(clock: ManualTime, behaviour: str = "real") -> Iterator[tuple[RunningSandbox, Table]]:
    running, description = start_airtable(RECORDS, SEED, time_source=clock, behaviour=behaviour)
    try:
        api = Api(description["env"]["RELSYNC_AIRTABLE_TOKEN"], endpoint_url=running.url, retry_strategy=None)
        yield running, api.table(description["base"], description["table"])
    finally:
        running.stop()


@pytest.fixture
def airtable(clock: ManualTime) -> Iterator[tuple[RunningSandbox, Table]]:
    """An Airtable sandbox with the real defaults on ``clock``, and pyairtable's table."""
    yield from started(clock)


def refusal(call: object) -> requests.Response:
    with pytest.raises(requests.HTTPError) as caught:
        call()  # type: ignore[operator]
    return caught.value.response


def test_five_requests_a_second_then_thirty_seconds_of_refusals(airtable: tuple[RunningSandbox, Table], clock: ManualTime) -> None:
    running, table = airtable
    for _ in range(5):
        assert table.first() is not None  # all at t=0
    penalised = refusal(table.first)  # the sixth in one second opens the 30 s penalty
    assert penalised.status_code == 429 and penalised.json() == RATE_LIMITED and "Retry-After" not in penalised.headers
    clock.advance(29.999)
    assert refusal(table.first).status_code == 429  # the window has room, the penalty still refuses
    clock.advance(0.001)
    assert table.first() is not None
    for _ in range(20):  # a client that keeps to 5 a second is never refused
        clock.advance(0.2)
        assert table.first() is not None
    assert calls(running)["statuses"] == {"200": 26, "429": 2}


def test_an_idle_iterator_times_out_by_default(airtable: tuple[RunningSandbox, Table], clock: ManualTime) -> None:
    _, table = airtable
    pages = table.iterate(page_size=100)
    assert len(next(pages)) == 100  # t=0: the iterator opens
    clock.advance(ITERATOR_TTL_SECONDS)
    assert len(next(pages)) == 100  # idle exactly the time-out: still there, and renewed
    clock.advance(ITERATOR_TTL_SECONDS + 0.001)
    gone = refusal(lambda: next(pages))
    assert gone.status_code == 422 and gone.json() == GONE
    assert len(table.all()) == RECORDS  # restarting from the beginning works


def test_an_offset_that_is_no_iterators_is_invalid(airtable: tuple[RunningSandbox, Table], clock: ManualTime) -> None:
    _, table = airtable
    offset = table.api.request("GET", table.urls.records, params={"pageSize": 100})["offset"]
    iterator, record = offset.split("/")
    for bad in (iterator, record, "garbage", f"{iterator}/{record}x", f"{iterator}x/{record}"):
        clock.advance(1)  # keep to the rate limit
        answer = refusal(lambda bad=bad: next(table.iterate(offset=bad)))
        assert answer.status_code == 422
        assert answer.json() == {"error": {"type": "INVALID_OFFSET_VALUE", "message": f"The value of offset {bad} is invalid"}}
    unknown = refusal(lambda: next(table.iterate(offset=f"itr{'0' * 14}/{record}")))
    assert unknown.status_code == 422 and unknown.json() == GONE  # well formed, but no such iterator
    assert len(next(table.iterate(offset=offset))) == 100


def test_the_kind_profile_has_no_rate_limit_and_iterators_that_wait(clock: ManualTime) -> None:
    for running, table in started(clock, "kind"):
        pages = table.iterate(page_size=100)
        assert [len(next(pages)) for _ in range(2)] == [100, 100]
        assert all(table.first() is not None for _ in range(20))  # no limit
        clock.advance(86400)
        assert len(next(pages)) == RECORDS - 200  # a day idle: the iterator is still there
        shown = knob(running, "/config", method="GET").json()
        assert shown["behaviour"] == "kind" and shown["rate_limit"] is None
        assert shown["airtable"]["iterator_ttl_seconds"] is None


def test_config_shows_the_real_defaults(airtable: tuple[RunningSandbox, Table]) -> None:
    running, _ = airtable
    assert knob(running, "/config", method="GET").json() == {
        "behaviour": "real",
        "rate_limit": {"requests": 5, "per_seconds": 1.0, "retry_after": None, "penalty_seconds": 30.0},
        "latency_ms": 0.0,
        "airtable": {"timestamp_precision": "second", "iterator_ttl_seconds": ITERATOR_TTL_SECONDS,
                     "retry_after_header": False},
    }
    assert knob(running, "/config", {"rate_limit": None}).json()["rate_limit"] is None  # a test may still switch it off
