"""The one clock: every vendor shape parses to the same moment; one text shape comes out."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapping import clock

MOMENT = dt.datetime(2026, 11, 20, 10, 15, 30, 123000, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T10:15:30.123+0000",  # Jira, Salesforce
        "2026-11-20T10:15:30.123Z",  # Airtable, relsync
        "2026-11-20T10:15:30.123+00:00",  # Python's isoformat
        "2026-11-20T11:15:30.123+0100",  # a Jira account in Paris
        "2026-11-20T05:15:30.123-05:00",
        "2026-11-20T10:15:30.123456789Z",  # nanoseconds are cut to microseconds
        "2026-11-20 10:15:30.123Z",
    ],
)
def test_vendor_shapes_parse_to_one_moment(text):
    assert clock.parse(text).replace(microsecond=clock.parse(text).microsecond // 1000 * 1000) == MOMENT
    assert clock.stamp(text) == "2026-11-20T10:15:30.123Z"


def test_stamps_always_carry_milliseconds_and_z():
    assert clock.stamp(dt.datetime(2026, 12, 8, 18, tzinfo=dt.UTC)) == "2026-12-08T18:00:00.000Z"
    assert clock.stamp("2026-12-08T18:00Z") == "2026-12-08T18:00:00.000Z"
    assert clock.stamp(dt.datetime(999, 1, 2, tzinfo=dt.UTC)) == "0999-01-02T00:00:00.000Z"
    now = clock.now()
    assert now.tzinfo == dt.UTC and now.microsecond % 1000 == 0
    assert clock.parse(clock.stamp(now)) == now


@pytest.mark.parametrize("text", ["2026-11-20T10:15:30", "2026-11-20", "yesterday", "2026-02-30T10:00:00Z", ""])
def test_a_moment_without_a_zone_or_not_a_moment_is_refused(text):
    with pytest.raises(clock.TimestampError):
        clock.parse(text)


def test_a_naive_datetime_is_refused():
    with pytest.raises(clock.TimestampError, match="naive"):
        clock.stamp(dt.datetime(2026, 11, 20, 10, 15))


@given(st.datetimes(min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()))
def test_stamps_sort_as_time_does(moment):
    later = moment.astimezone(dt.UTC) + dt.timedelta(milliseconds=1)
    assert clock.stamp(moment) < clock.stamp(later)
    assert clock.parse(clock.stamp(moment)) == moment.astimezone(dt.UTC).replace(microsecond=moment.microsecond // 1000 * 1000)
