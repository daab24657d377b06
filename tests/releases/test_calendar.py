"""The release calendar: cadence, timezone and DST, freeze, phases, blackouts, states."""
from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.schema import Train
from releases.calendar import effective_date, materialize_releases
from tests.trains import PHASES, UTC, at, train

BERLIN = ZoneInfo("Europe/Berlin")


# --- the calendar -------------------------------------------------------------------


def test_next_releases_with_ids_names_freeze_and_states():
    releases = materialize_releases(train(), at("2026-11-20 09:00"))
    assert [(r.id, r.name, r.state) for r in releases] == [
        ("BS-20261201", "BS 2026.12.01", "open"),
        ("BS-20261215", "BS 2026.12.15", "open"),
        ("BS-20261229", "BS 2026.12.29", "open"),
        ("BS-20270112", "BS 2027.01.12", "open"),
    ]
    first = releases[0]
    assert first.deploy_at == at("2026-12-01 18:00")
    assert first.freeze_at == at("2026-11-28 18:00")
    assert (first.train, first.capacity) == ("BS", 2)


def test_phases_run_back_to_back_around_the_deploy():
    release = materialize_releases(train(), at("2026-11-20 09:00"))[0]
    assert [(p.phase, p.starts, p.ends, p.owner) for p in release.phases] == [
        ("planning", at("2026-11-18 18:00"), at("2026-11-21 18:00"), "pm@example.com"),
        ("development", at("2026-11-21 18:00"), at("2026-11-28 18:00"), "dev-lead@example.com"),
        ("testing", at("2026-11-28 18:00"), at("2026-12-01 18:00"), "qa@example.com"),
        ("deployment", at("2026-12-01 18:00"), at("2026-12-02 18:00"), "release-manager@example.com"),
        ("maintenance", at("2026-12-02 18:00"), at("2026-12-07 18:00"), "ops@example.com"),
    ]


def test_deployment_lasts_at_least_the_deploy_day_and_maintenance_follows_it():
    phases = [
        {"phase": "testing", "days": 2, "owner": "qa"},
        {"phase": "deployment", "days": 0, "owner": "rm"},
        {"phase": "maintenance", "days": 3, "owner": "ops"},
    ]
    release = materialize_releases(train(phases=phases), at("2026-11-20 09:00"))[0]
    windows = {p.phase: (p.starts, p.ends) for p in release.phases}
    assert windows["deployment"] == (at("2026-12-01 18:00"), at("2026-12-02 18:00"))
    assert windows["maintenance"] == (at("2026-12-02 18:00"), at("2026-12-05 18:00"))
    without = materialize_releases(train(phases=[phases[2]]), at("2026-11-20 09:00"))[0]
    assert [(p.starts, p.ends) for p in without.phases] == [(at("2026-12-02 18:00"), at("2026-12-05 18:00"))]


def test_anchor_in_the_future_counts_back_from_it():
    releases = materialize_releases(
        train(cadence={"every_days": 14, "anchor": "2027-06-08"}, horizon=2), at("2026-11-20 09:00")
    )
    assert [r.id for r in releases] == ["BS-20261124", "BS-20261208"]
    assert all((dt.date(2027, 6, 8) - r.deploy_at.date()).days % 14 == 0 for r in releases)


def test_cadence_crosses_month_ends_and_leap_days():
    releases = materialize_releases(
        train(cadence={"every_days": 30, "anchor": "2028-01-30"}, horizon=3), at("2028-01-02 00:00")
    )
    assert [r.deploy_at.date() for r in releases] == [
        dt.date(2028, 1, 30), dt.date(2028, 2, 29), dt.date(2028, 3, 30)
    ]
    releases = materialize_releases(
        train(cadence={"every_days": 30, "anchor": "2026-12-31"}, horizon=2), at("2027-01-01 18:00")
    )
    assert [r.id for r in releases] == ["BS-20270130", "BS-20270301"]


def test_freeze_begins_exactly_at_freeze_time():
    just_before = materialize_releases(train(), at("2026-11-28 17:59:59"))[0]
    exactly = materialize_releases(train(), at("2026-11-28 18:00"))[0]
    assert (just_before.id, just_before.state) == ("BS-20261201", "open")
    assert (exactly.id, exactly.state) == ("BS-20261201", "frozen")


def test_a_release_is_deploying_from_deploy_time_for_its_deployment_days():
    exactly = materialize_releases(train(), at("2026-12-01 18:00"))
    assert [(r.id, r.state) for r in exactly] == [
        ("BS-20261201", "deploying"),
        ("BS-20261215", "open"),
        ("BS-20261229", "open"),
        ("BS-20270112", "open"),
        ("BS-20270126", "open"),
    ]
    day_later = materialize_releases(train(), at("2026-12-02 18:00"))
    assert day_later[0].id == "BS-20261215" and len(day_later) == 4
    three_days = [p | {"days": 3} if p["phase"] == "deployment" else p for p in PHASES]
    longer = materialize_releases(train(phases=three_days), at("2026-12-04 17:59"))
    assert (longer[0].id, longer[0].state) == ("BS-20261201", "deploying")


def test_no_freeze_keeps_a_release_open_until_it_deploys():
    release = materialize_releases(train(freeze_days=0), at("2026-12-01 17:59"))[0]
    assert (release.freeze_at, release.state) == (at("2026-12-01 18:00"), "open")


def test_calendar_refuses_a_naive_now():
    with pytest.raises(ValueError, match="timezone-aware"):
        materialize_releases(train(), dt.datetime(2026, 11, 20))


@given(
    every=st.integers(1, 60),
    anchor=st.dates(dt.date(2020, 1, 1), dt.date(2035, 12, 31)),
    now=st.datetimes(dt.datetime(2024, 1, 1), dt.datetime(2030, 12, 31), timezones=st.just(UTC)),
    deploy_time=st.times(),
    freeze=st.integers(0, 10),
    horizon=st.integers(1, 8),
    deploy_days=st.integers(0, 5),
)
def test_calendar_properties(every, anchor, now, deploy_time, freeze, horizon, deploy_days):
    phases = [{"phase": "deployment", "days": deploy_days, "owner": "rm"}]
    spec = train(
        cadence={"every_days": every, "anchor": anchor.isoformat()}, deploy_time=deploy_time,
        freeze_days=freeze, horizon=horizon, phases=phases,
    )
    releases = materialize_releases(spec, now)
    upcoming = [r for r in releases if r.deploy_at > now]
    deploying = [r for r in releases if r.deploy_at <= now]
    assert len(upcoming) == horizon
    assert releases == deploying + upcoming
    assert upcoming[0].deploy_at - dt.timedelta(days=every) <= now
    for release in releases:
        assert (release.deploy_at.date() - anchor).days % every == 0
        assert release.deploy_at.timetz().replace(tzinfo=None) == deploy_time
        assert release.freeze_at == release.deploy_at - dt.timedelta(days=freeze)
        expected = "open" if now < release.freeze_at else "frozen" if now < release.deploy_at else "deploying"
        assert release.state == expected
    for release in deploying:
        assert now < release.deploy_at + dt.timedelta(days=max(deploy_days, 1))
    for earlier, later in itertools.pairwise(releases):
        assert later.deploy_at - earlier.deploy_at == dt.timedelta(days=every)
    gone = releases[0].deploy_at - dt.timedelta(days=every)
    assert gone + dt.timedelta(days=max(deploy_days, 1)) <= now



# --- every N weeks on a weekday -----------------------------------------------------


def test_every_two_weeks_on_tuesday_is_the_same_calendar_as_every_fourteen_days():
    weekly = train(cadence={"every_weeks": 2, "weekday": "Tuesday", "anchor": "2026-12-01"})
    daily = train()
    now = at("2026-11-20 09:00")
    assert materialize_releases(weekly, now) == materialize_releases(daily, now)


def test_weekly_without_an_anchor_deploys_on_every_such_weekday():
    releases = materialize_releases(train(cadence={"every_weeks": 1, "weekday": "friday"}, horizon=3),
                                    at("2026-12-30 12:00"))
    assert [r.id for r in releases] == ["BS-20270101", "BS-20270108", "BS-20270115"]
    assert {r.deploy_at.strftime("%A") for r in releases} == {"Friday"}


def test_weekly_anchor_in_the_future_counts_back_from_it():
    releases = materialize_releases(
        train(cadence={"every_weeks": 3, "weekday": "tuesday", "anchor": "2027-06-08"}, horizon=2),
        at("2026-11-20 09:00"),
    )
    assert [r.id for r in releases] == ["BS-20261201", "BS-20261222"]  # 27 weeks before 8 June


def test_month_ends_on_a_day_based_cadence_anchored_on_the_31st():
    releases = materialize_releases(
        train(cadence={"every_days": 30, "anchor": "2027-01-31"}, horizon=3), at("2027-01-30 00:00")
    )
    assert [r.deploy_at.date() for r in releases] == [dt.date(2027, 1, 31), dt.date(2027, 3, 2), dt.date(2027, 4, 1)]
    assert [r.name for r in releases] == ["BS 2027.01.31", "BS 2027.03.02", "BS 2027.04.01"]


# --- timezones and daylight saving time ------------------------------------------------


def berlin(**changes) -> Train:
    return train(cadence={"every_weeks": 1, "weekday": "tuesday"}, timezone="Europe/Berlin",
                 phases=[{"phase": "testing", "days": 3, "owner": "qa"},
                         {"phase": "deployment", "days": 1, "owner": "rm"}], **changes)


def test_an_1800_berlin_deploy_is_1700z_in_winter_and_1600z_in_summer():
    spring = materialize_releases(berlin(horizon=3), at("2027-03-20 12:00"))
    assert [(r.id, r.deploy_at) for r in spring] == [
        ("BS-20270323", at("2027-03-23 17:00")),  # CET, UTC+1
        ("BS-20270330", at("2027-03-30 16:00")),  # CEST, UTC+2: the clocks went forward on Sunday 28 March
        ("BS-20270406", at("2027-04-06 16:00")),
    ]
    # Freeze and phases count local days: the freeze is Saturday 18:00 CET, the deploy
    # Tuesday 18:00 CEST, 71 hours later.
    across = spring[1]
    assert across.freeze_at == at("2027-03-27 17:00")
    assert [(p.phase, p.starts, p.ends) for p in across.phases] == [
        ("testing", at("2027-03-27 17:00"), at("2027-03-30 16:00")),
        ("deployment", at("2027-03-30 16:00"), at("2027-03-31 16:00")),
    ]
    autumn = materialize_releases(berlin(horizon=2), at("2027-10-21 12:00"))
    assert [(r.id, r.deploy_at, r.freeze_at) for r in autumn] == [
        ("BS-20271026", at("2027-10-26 16:00"), at("2027-10-23 16:00")),
        # Clocks went back on Sunday 31 October: freeze Saturday 18:00 CEST, deploy 18:00 CET.
        ("BS-20271102", at("2027-11-02 17:00"), at("2027-10-30 16:00")),
    ]


def test_the_release_is_frozen_and_deploying_by_local_time():
    frozen = materialize_releases(berlin(), at("2027-03-27 17:00"))[0]
    assert (frozen.id, frozen.state) == ("BS-20270330", "frozen")
    assert materialize_releases(berlin(), at("2027-03-27 16:59"))[0].state == "open"
    deploying = materialize_releases(berlin(), at("2027-03-30 16:00"))[0]
    assert (deploying.id, deploying.state) == ("BS-20270330", "deploying")


def test_a_wall_clock_time_missing_on_the_spring_forward_day_is_read_with_the_old_offset():
    daily = train(cadence={"every_days": 1, "anchor": "2027-01-01"}, timezone="Europe/Berlin",
                  deploy_time="02:30", horizon=3, phases=[])
    releases = materialize_releases(daily, at("2027-03-26 12:00"))
    assert [r.deploy_at for r in releases if r.state != "deploying"] == [
        at("2027-03-27 01:30"),  # 02:30 CET
        at("2027-03-28 01:30"),  # 02:30 does not exist that night: 03:30 CEST
        at("2027-03-29 00:30"),  # 02:30 CEST
    ]


def test_ids_and_names_follow_the_local_date_not_the_utc_one():
    west = train(timezone="America/Los_Angeles", deploy_time="23:30", horizon=1)
    (release,) = materialize_releases(west, at("2026-11-20 09:00"))
    assert release.deploy_at == at("2026-12-02 07:30")  # Wednesday in UTC
    assert (release.id, release.name) == ("BS-20261201", "BS 2026.12.01")


# --- blackouts ------------------------------------------------------------------------

YEAR_END = {"name": "Year end", "start": "2026-12-20", "end": "2027-01-04"}


def test_a_release_inside_a_move_blackout_deploys_the_day_after_it_keeping_its_id():
    releases = materialize_releases(train(blackouts=[YEAR_END | {"action": "move"}]), at("2026-11-20 09:00"))
    assert [(r.id, r.name, r.deploy_at, r.moved_by) for r in releases] == [
        ("BS-20261201", "BS 2026.12.01", at("2026-12-01 18:00"), None),
        ("BS-20261215", "BS 2026.12.15", at("2026-12-15 18:00"), None),
        ("BS-20261229", "BS 2027.01.05", at("2027-01-05 18:00"), "Year end"),
        ("BS-20270112", "BS 2027.01.12", at("2027-01-12 18:00"), None),
    ]
    moved = releases[2]
    assert moved.freeze_at == at("2027-01-02 18:00")
    assert moved.phases[-1].phase == "maintenance" and moved.phases[-1].starts == at("2027-01-06 18:00")


def test_a_release_inside_a_skip_blackout_is_not_materialized_and_the_horizon_counts_real_ones():
    releases = materialize_releases(train(blackouts=[YEAR_END | {"action": "skip"}]), at("2026-11-20 09:00"))
    assert [r.id for r in releases] == ["BS-20261201", "BS-20261215", "BS-20270112", "BS-20270126"]


def test_two_releases_moved_to_one_day_keep_the_earliest():
    weekly = train(cadence={"every_weeks": 1, "weekday": "tuesday"}, horizon=3,
                   blackouts=[{"name": "Holidays", "start": "2026-12-20", "end": "2027-01-03"}])
    releases = materialize_releases(weekly, at("2026-12-10 09:00"))
    assert [(r.id, r.deploy_at.date(), r.moved_by) for r in releases] == [
        ("BS-20261215", dt.date(2026, 12, 15), None),
        ("BS-20261222", dt.date(2027, 1, 4), "Holidays"),  # 29 December moved there too, and is dropped
        ("BS-20270105", dt.date(2027, 1, 5), None),
    ]


def test_a_release_moved_onto_a_regular_deploy_day_gives_way_to_it():
    weekly = train(cadence={"every_weeks": 1, "weekday": "tuesday"}, horizon=2, blackouts=[YEAR_END])
    releases = materialize_releases(weekly, at("2026-12-17 09:00"))
    assert [(r.id, r.name, r.moved_by) for r in releases] == [
        ("BS-20270105", "BS 2027.01.05", None), ("BS-20270112", "BS 2027.01.12", None),
    ]


def test_a_release_moved_past_now_is_still_ahead_while_the_blackout_runs():
    releases = materialize_releases(train(blackouts=[YEAR_END], horizon=2), at("2027-01-03 09:00"))
    assert [(r.id, r.deploy_at, r.state) for r in releases] == [
        ("BS-20261229", at("2027-01-05 18:00"), "frozen"),
        ("BS-20270112", at("2027-01-12 18:00"), "open"),
    ]


def test_chained_blackouts_move_on_and_a_skip_wins():
    move_a = {"name": "A", "start": "2026-12-20", "end": "2026-12-31"}
    move_b = {"name": "B", "start": "2026-12-30", "end": "2027-01-06"}
    skip_b = move_b | {"action": "skip"}
    assert effective_date(train(blackouts=[move_a, move_b]), dt.date(2026, 12, 29)) == (dt.date(2027, 1, 7), "A")
    assert effective_date(train(blackouts=[move_a, skip_b]), dt.date(2026, 12, 29)) == (None, "B")
    assert effective_date(train(blackouts=[move_b, skip_b]), dt.date(2027, 1, 1)) == (None, "B")
    assert effective_date(train(blackouts=[move_a]), dt.date(2027, 1, 1)) == (dt.date(2027, 1, 1), None)


# --- planned: only the next N releases are open ----------------------------------------


def test_open_releases_limits_how_many_take_requests():
    assert [r.state for r in materialize_releases(train(open_releases=2), at("2026-11-20 09:00"))] == [
        "open", "open", "planned", "planned",
    ]
    # A frozen release does not use up one of the open ones.
    assert [r.state for r in materialize_releases(train(open_releases=2), at("2026-11-29 09:00"))] == [
        "frozen", "open", "open", "planned",
    ]


# --- properties ---------------------------------------------------------------------------


@st.composite
def blackouts(draw):
    start = draw(st.dates(dt.date(2026, 11, 1), dt.date(2027, 3, 1)))
    length = draw(st.integers(0, 30))
    return {"name": f"b{draw(st.integers(0, 99))}", "start": start.isoformat(),
            "end": (start + dt.timedelta(days=length)).isoformat(), "action": draw(st.sampled_from(["move", "skip"]))}


@settings(max_examples=300, deadline=None)
@given(
    every=st.integers(1, 21),
    anchor=st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)),
    now=st.datetimes(dt.datetime(2026, 10, 1), dt.datetime(2027, 4, 30), timezones=st.just(UTC)),
    hour=st.integers(6, 22),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"]),
    horizon=st.integers(1, 6),
    windows=st.lists(blackouts(), max_size=3),
)
def test_no_release_deploys_inside_a_blackout_and_no_regular_release_is_lost(
    every, anchor, now, hour, zone, horizon, windows
):
    spec = train(cadence={"every_days": every, "anchor": anchor.isoformat()}, timezone=zone,
                 deploy_time=dt.time(hour), horizon=horizon, blackouts=windows,
                 phases=[{"phase": "deployment", "days": 1, "owner": "rm"}])
    local = ZoneInfo(zone)
    releases = materialize_releases(spec, now)
    upcoming = [r for r in releases if r.deploy_at > now]
    assert len(upcoming) == horizon
    assert all(r.state == "deploying" for r in releases if r.deploy_at <= now)
    days = [r.deploy_at.astimezone(local).date() for r in releases]
    assert days == sorted(set(days))  # one release a day at most, in order
    assert len({r.id for r in releases}) == len({r.name for r in releases}) == len(releases)
    for release, day in zip(releases, days, strict=True):
        assert not any(b.covers(day) for b in spec.blackouts), (release.id, day)
        assert release.deploy_at.astimezone(local).time() == dt.time(hour)
        original = dt.datetime.strptime(release.id.rsplit("-", 1)[1], "%Y%m%d").date()
        assert (original - anchor).days % every == 0
        assert effective_date(spec, original) == (day, release.moved_by)
        assert (day == original) == (release.moved_by is None)
    # Every cadence date outside the blackouts between the first and last release is there.
    first, last = days[0], days[-1]
    ids = {r.id for r in releases}
    day = anchor + dt.timedelta(days=((first - anchor).days // every) * every)
    while day <= last:
        if day >= first and not any(b.covers(day) for b in spec.blackouts):
            assert f"BS-{day:%Y%m%d}" in ids, day
        day += dt.timedelta(days=every)
