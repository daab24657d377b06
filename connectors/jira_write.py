"""Writing the release and status back to Jira: compare, write, then read the changelog for overwrites.

Before writing, one ``issue/bulkfetch`` per 100 issues reads what Jira shows now (the
issue store, not the lagging search index), so a field someone changed since the pull is
reported as a conflict instead of being overwritten. Then, per value:

- a group of more than ``bulk_threshold`` issues getting the same value (one release, one
  status) goes through Jira's bulk operations (connectors.jira_bulk), 1,000 issues a job;
  each issue a job fails is a failed write with Jira's reason, the others are written;
- a smaller group goes issue by issue: the release in ``fixVersions`` by one PUT without
  the library's re-GET, the status by the workflow transition to the configured name.

Jira has no conditional writes: after the writes, ``changelog/bulkfetch`` shows whether an
edit landed between the read and the write (connectors.jira_history); such an edit is put
back, and the write is a conflict.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from jira import JIRA

from config.schema import JiraSource
from connectors.base import Estimate, Journal, Write, WriteResult
from connectors.calls import ApiCalls, push_until_stopped
from connectors.errors import ConnectorError, FatalError, PermissionDenied, SourceConfigError
from connectors.jira_bulk import (
    EXPECTED_POLLS,
    JOB_SIZE,
    BulkJobs,
    EditInput,
    JobResult,
    chunks,
    field_input,
    transitions_to,
    versions_input,
)
from connectors.jira_history import Overwritten, entry_of, overwritten, since
from connectors.jira_versions import ProjectVersions, VersionRefused
from connectors.paging import iter_pages
from connectors.writeback import Pending, Shown, calls_for, compare_then_send
from mapping.fields import shown_value

SYSTEM = "jira"
CHECK_BATCH = 100
RELEASE = "release"
STATUS = "status"
PLANNED_DATE = "planned_date"
CHECK_FIELDS = ["fixVersions", "status", "issuetype", "updated"]
GONE = "issue {} no longer exists or is not visible"
Member = tuple[Pending, Write]
"""One write of a group, with the issue it goes to as the compare read saw it."""
GroupKey = tuple[tuple[str, Any], ...]
"""What a group of issues is given: (engine field, value) pairs, by field (one status, or every edited field)."""


def record_of(write: Write) -> str:
    """The issue a write goes to: its key (its id for an issue pulled without one)."""
    return write.native_key or write.native_id


def shown_of(issue: dict[str, Any], plain: dict[str, str] | None = None) -> dict[str, Any]:
    """What an issue shows, under the engine's field names: the release is its first fix version;
    ``plain`` names the custom field of each plain engine field (the planned date, the phase)."""
    fields = issue.get("fields") or {}
    return {
        RELEASE: next((v.get("name") for v in fields.get("fixVersions") or []), None),
        STATUS: (fields.get("status") or {}).get("name"),
        "issuetype": (fields.get("issuetype") or {}).get("name"),
        "id": str(issue.get("id")),
        "updated": fields.get("updated"),
    } | {name: shown_value(fields.get(field_id)) for name, field_id in (plain or {}).items()}


def group_keys(writes: list[Write]) -> list[tuple[GroupKey, list[Write]]]:
    """One issue's writes by what they give it: its status alone, and its edited fields together
    (the release with the planned date and the phase, which one bulk edit sets at once)."""
    keys: list[tuple[GroupKey, list[Write]]] = []
    edits = sorted((w for w in writes if w.field != STATUS), key=lambda w: w.field)
    if edits:
        keys.append((tuple((w.field, w.value) for w in edits), edits))
    keys += [(((STATUS, w.value),), [w]) for w in writes if w.field == STATUS]
    return keys


def bulk_groups(writes: list[Write], threshold: int, targets: Shown) -> dict[GroupKey, list[Write]]:
    """Writes grouped by what they give their issue, only the groups of more than ``threshold`` issues
    (those go through bulk jobs)."""
    by_issue: dict[str, list[Write]] = {}
    for write in writes:
        if write.field in targets:
            by_issue.setdefault(record_of(write), []).append(write)
    groups: dict[GroupKey, list[Write]] = {}
    issues: dict[GroupKey, int] = {}
    for issue_writes in by_issue.values():
        for key, group in group_keys(issue_writes):
            groups.setdefault(key, []).extend(group)
            issues[key] = issues.get(key, 0) + 1
    return {key: group for key, group in groups.items() if issues[key] > threshold}


class JiraWriter:
    """The write path of one Jira source."""

    def __init__(self, name: str, config: JiraSource, calls: ApiCalls, client: Callable[[], JIRA],
                 versions: ProjectVersions, post: Callable[[str, dict[str, Any]], Any]) -> None:
        self.name = name
        self.config = config
        self.calls = calls
        self.client = client
        self.versions = versions
        self._post = post
        self.jobs = BulkJobs(calls, client)
        self._transitions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._bulk_transitions: dict[tuple[str, str], dict[str, Any]] = {}
        self._bulk: dict[GroupKey, list[Write]] = {}
        self.plain = {name: target.field for name, target in config.write.field_targets().items()}
        """The plain engine fields (the planned date, the phase) and the custom field each is written to."""
        self.targets = {RELEASE: RELEASE, STATUS: STATUS} | {name: name for name in self.plain}
        """Engine field -> where ``shown_of`` puts its current value (the engine's own names)."""
        self.field_ids = {RELEASE: "fixVersions", STATUS: "status"} | self.plain
        """Engine field -> the ``fieldId`` its writes leave in the changelog."""

    def push(self, writes: list[Write], journal: Journal | None = None) -> list[WriteResult]:
        """Compare (one bulkfetch per 100 issues), write, then read the changelog for overwrites.

        When some value goes to more than ``bulk_threshold`` issues, every issue is compared
        first and the writes go out together, each such group in bulk jobs of 1,000 issues.
        """
        self._bulk = bulk_groups(writes, self.config.bulk_threshold, self.targets)
        send_batch = max(1, len({record_of(w) for w in writes})) if self._bulk else 1
        return push_until_stopped(writes, journal, lambda recording: compare_then_send(
            writes, system="Jira", targets=self.targets, read=self._current, read_batch=CHECK_BATCH,
            send=self._send, send_batch=send_batch, gone=GONE,
            record=record_of, journal=recording, verify=self._verify, version_of=lambda shown: shown.get("updated"),
        ))

    def _current(self, keys: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        """What Jira's issue store shows now for ``keys`` (one bulkfetch; missing issues are left out)."""
        found = self._post("issue/bulkfetch", {"issueIdsOrKeys": keys, "fields": [*CHECK_FIELDS, *self.plain.values()]})
        return {issue["key"]: shown_of(issue, self.plain) for issue in found.get("issues", [])}

    def _histories(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The release and status changelog of ``keys``, by issue id (``changelog/bulkfetch``: 1,000 issues a call, paged)."""
        histories: dict[str, list[dict[str, Any]]] = {}
        for chunk in chunks(keys):
            for issue, logs in self._histories_of(chunk).items():
                histories.setdefault(issue, []).extend(logs)
        return histories

    def _histories_of(self, keys: list[str]) -> dict[str, list[dict[str, Any]]]:

        def fetch(token: str | None) -> dict[str, Any]:
            body: dict[str, Any] = {"issueIdsOrKeys": keys, "fieldIds": sorted(self.field_ids.values()), "maxResults": 1000}
            return self._post("changelog/bulkfetch", body | ({"nextPageToken": token} if token else {}))

        histories: dict[str, list[dict[str, Any]]] = {}
        for page in iter_pages(SYSTEM, fetch, "nextPageToken"):
            for log in page.get("issueChangeLogs", []):
                histories.setdefault(str(log["issueId"]), []).extend(log.get("changeHistories") or [])
        return histories

    def _verify(self, batch: list[Pending], results: list[WriteResult]) -> list[WriteResult]:
        """Results again, with writes that replaced someone's edit made since the compare read put back as conflicts."""
        shown = {pending.record: pending.shown for pending in batch}
        written = sorted({record_of(r.write) for r in results if r.outcome == "ok"})
        if not written:
            return results
        histories = self._histories(written)
        checked: list[WriteResult] = []
        for result in results:
            seen = shown.get(record_of(result.write))
            if result.outcome != "ok" or seen is None:
                checked.append(result)
                continue
            entries = since(histories.get(str(seen.get("id")), []), seen.get("updated"))
            field_id = self.field_ids[result.write.field]
            found = overwritten(field_id, result.write.value, result.write.base, entries)
            if found is not None:
                checked.append(self._put_back(record_of(result.write), result.write, found, seen))
                continue
            # The issue's ``updated`` once this write landed: a lagging search showing it older is old news.
            ours = entry_of(field_id, result.write.value, entries)
            checked.append(dataclasses.replace(result, version=ours["created"]) if ours else result)
        return checked

    def _put_back(self, key: str, write: Write, found: Overwritten, seen: Shown) -> WriteResult:
        """Undo relsync's write of ``write`` that replaced ``found``: the person's value stands."""
        problem: str | None = None
        try:
            if write.field == RELEASE:
                self._edit(key, {"fixVersions": [{"id": ident} for ident in found.restore]})
            elif write.field in self.plain:
                self._edit(key, {self.plain[write.field]: found.value})
            elif found.value:
                problem = self._transition(key, found.value, {STATUS: write.value, "issuetype": seen.get("issuetype")})
        except ConnectorError as error:
            problem = error.message
        outcome = f"putting their value back failed: {problem}" if problem else "their value was put back"
        message = (f"{key} {write.field}: changed in Jira to {found.value!r} between relsync's read and its write "
                   f"of {write.value!r}; {outcome}")
        return WriteResult(write, "conflict", message, current=found.value)

    def _send(self, batch: list[Pending]) -> list[WriteResult]:
        """Write a batch: the groups of more issues than the threshold by bulk jobs, the rest issue by issue."""
        grouped: dict[GroupKey, list[list[Member]]] = {}
        single: list[Member] = []
        for issue in batch:
            for key, writes in group_keys(issue.writes):
                if key in self._bulk:
                    grouped.setdefault(key, []).append([(issue, w) for w in writes])
                else:
                    single += [(issue, w) for w in writes]
        results: list[WriteResult] = []
        for key, per_issue in sorted(grouped.items(), key=lambda item: str(item[0])):
            for chunk in chunks(per_issue):
                members = [member for issue_members in chunk for member in issue_members]
                if key[0][0] == STATUS:
                    results += self._bulk_status(key[0][1], members)
                else:
                    results += self._bulk_edit(key, members)
        by_issue: dict[str, list[Member]] = {}
        for issue, write in single:
            by_issue.setdefault(issue.record, []).append((issue, write))
        for members in by_issue.values():
            issue = members[0][0]
            edits = [w for _, w in members if w.field != STATUS]
            if edits:
                results += self._apply_edits(issue.record, edits)
            results += [self._apply(issue.record, w, issue.shown) for _, w in members if w.field == STATUS]
        return results

    def _without_refused_versions(self, writes: list[Write]) -> tuple[list[Write], list[WriteResult]]:
        """The writes whose release has a version (or needs none), and a failed result for each whose
        version Jira refused to create: the planned date and phase beside it still go out."""
        kept: list[Write] = []
        refused: list[WriteResult] = []
        for write in writes:
            try:
                if write.field == RELEASE and write.value is not None:
                    self.versions.id_of(write.value)
            except VersionRefused as error:
                refused.append(WriteResult(write, "failed", error.message))
                continue
            kept.append(write)
        return kept, refused

    def _bulk_edit(self, given: GroupKey, members: list[Member]) -> list[WriteResult]:
        """One bulk edit giving up to 1,000 issues the same fields: the fix version, the plain fields."""
        kept, refused = self._without_refused_versions([write for _, write in members])
        if refused:
            left = {id(write) for write in kept}
            members = [(issue, write) for issue, write in members if id(write) in left]
            given = tuple((field, value) for field, value in given if field != RELEASE)
            return refused + (self._bulk_edit(given, members) if members else [])
        writes = [write for _, write in members]
        keys = list(dict.fromkeys(issue.record for issue, _ in members))
        try:
            inputs: list[EditInput] = []
            for field, value in given:
                if field == RELEASE:
                    inputs.append(versions_input(self.versions.id_of(value) if value is not None else None))
                else:
                    inputs.append(field_input(self.plain[field], value, date=field == PLANNED_DATE))
            job = self.jobs.edit(keys, inputs)
        except PermissionDenied as error:  # a SourceConfigError that stops only these writes
            return self._edit_refused(writes, error)
        except SourceConfigError:
            raise
        except ConnectorError as error:
            return self._edit_refused(writes, error)
        return self._outcomes(job, members)

    def _bulk_status(self, target: str, members: list[Member]) -> list[WriteResult]:
        """One bulk transition moving up to 1,000 issues to ``target``, each group of issues by its own transition."""
        by_place: dict[tuple[str, str], list[Member]] = {}
        for issue, write in members:
            by_place.setdefault((issue.shown.get("issuetype") or "", issue.shown.get(STATUS) or ""), []).append((issue, write))
        results: list[WriteResult] = []
        inputs: list[tuple[list[str], str]] = []
        moving: list[Member] = []
        try:
            for place, group in by_place.items():
                if place not in self._bulk_transitions:
                    self._bulk_transitions[place] = self.jobs.available([issue.record for issue, _ in group])
                chosen, names = transitions_to(target, self._bulk_transitions[place])
                if chosen is None:
                    results += [WriteResult(w, "failed", self._no_transition(issue.record, place[1], target, names))
                                for issue, w in group]
                    continue
                inputs.append(([issue.record for issue, _ in group], chosen))
                moving += group
            if not inputs:
                return results
            job = self.jobs.transition(inputs)
        except SourceConfigError:
            raise
        except ConnectorError as error:
            writes = [w for _, w in members if all(r.write is not w for r in results)]
            return results + (self.calls.held_back(writes, error) or [WriteResult(w, "failed", error.message) for w in writes])
        return results + self._outcomes(job, moving)

    def _outcomes(self, job: JobResult, members: list[Member]) -> list[WriteResult]:
        """Each write's outcome from its finished job: done, or failed with Jira's reason for its issue."""
        results = []
        for issue, write in members:
            ident = str(issue.shown.get("id"))
            if job.status != "COMPLETE":
                results.append(WriteResult(write, "failed", f"{issue.record}: Jira's bulk job {job.task} ended {job.status}"))
            elif ident in job.processed:
                results.append(WriteResult(write, "ok"))
            elif ident in job.failed:
                reason = "; ".join(job.failed[ident])
                message = (self._permission_problem(issue.record, write, reason) if "permission" in reason.lower()
                           else f"{issue.record}: {reason}")
                results.append(WriteResult(write, "failed", message))
            else:
                results.append(WriteResult(write, "failed", GONE.format(issue.record)))
        return results

    def _apply_edits(self, key: str, writes: list[Write]) -> list[WriteResult]:
        """The release and plain fields of one issue in one PUT; every refusal but a credentials error becomes their result."""
        writes, refused = self._without_refused_versions(writes)
        if refused:
            return refused + (self._apply_edits(key, writes) if writes else [])
        fields: dict[str, Any] = {}
        try:
            for write in writes:
                if write.field == RELEASE:
                    fields["fixVersions"] = [{"id": self.versions.id_of(write.value)}] if write.value is not None else []
                else:
                    fields[self.plain[write.field]] = write.value
            self._edit(key, fields)
        except PermissionDenied as error:  # a SourceConfigError that stops only these writes
            return self._edit_refused(writes, error)
        except SourceConfigError:
            raise
        except ConnectorError as error:
            return self._edit_refused(writes, error)
        return [WriteResult(w, "ok") for w in writes]

    def _edit_refused(self, writes: list[Write], error: ConnectorError) -> list[WriteResult]:
        """The results of edit writes Jira refused: the permission they need, its word on a version,
        or its error (writes held back for the next run when the source stopped answering)."""
        if isinstance(error, PermissionDenied):
            return [WriteResult(w, "failed", self._permission_problem(record_of(w), w, error)) for w in writes]
        if isinstance(error, VersionRefused):
            return [WriteResult(w, "failed", error.message) for w in writes]
        return self.calls.held_back(writes, error) or [WriteResult(w, "failed", error.message) for w in writes]

    def _apply(self, key: str, write: Write, shown: Shown) -> WriteResult:
        """One status write to one issue; every refusal but a credentials error becomes its result."""
        try:
            if problem := self._transition(key, write.value, shown):
                return WriteResult(write, "failed", problem)
        except PermissionDenied as error:
            return WriteResult(write, "failed", self._permission_problem(key, write, error))
        except VersionRefused as refused:
            return WriteResult(write, "failed", refused.message)
        except SourceConfigError:
            raise
        except ConnectorError as error:
            return (self.calls.held_back([write], error) or [WriteResult(write, "failed", error.message)])[0]
        return WriteResult(write, "ok")

    def _permission_problem(self, key: str, write: Write, error: ConnectorError | str) -> str:
        doing, permission = (f"editing {key}", "Edit Issues") if write.field != STATUS else (
            f"moving {key} to {write.value!r}", "Transition Issues")
        reason = error if isinstance(error, str) else error.message
        return f"Jira: {doing} needs the {permission} permission for project {self.config.project} ({reason})"

    def _edit(self, key: str, fields: dict[str, Any]) -> None:
        body = json.dumps({"fields": fields})
        url = self.client()._get_url(f"issue/{key}")
        # One PUT and no re-GET: Issue.update() would read the whole issue back.
        self.calls(lambda: self.client()._session.put(url, data=body))

    def _transition(self, key: str, target: str, shown: Shown) -> str | None:
        status = shown.get(STATUS) or ""
        cache_key = (shown.get("issuetype") or "", status)
        if cache_key not in self._transitions:
            self._transitions[cache_key] = self.calls(lambda: self.client().transitions(key))
        choices = self._transitions[cache_key]
        chosen = next((t for t in choices if (t.get("to") or {}).get("name") == target), None)
        if chosen is not None:
            return self._move(key, str(chosen["id"]), target)
        return self._no_transition(key, status, target, sorted({(t.get("to") or {}).get("name", "?") for t in choices}))

    def _no_transition(self, key: str, status: str, target: str, names: list[str]) -> str:
        """Why ``key`` cannot be moved from ``status`` to ``target`` when Jira offers transitions to ``names`` only."""
        if not names:  # Jira lists no transitions at all to an account without Transition Issues
            return (f"Jira: moving {key} to {target!r} needs the Transition Issues permission for project "
                    f"{self.config.project} (Jira lists no transitions from {status!r} for this account)")
        return (
            f"{key}: the workflow has no transition from {status!r} to {target!r} "
            f"(available: {', '.join(names)}); not forced"
        )

    def _move(self, key: str, transition: str, target: str) -> str | None:
        """POST the transition; one that may have landed is checked by reading the issue's status, never repeated blindly."""

        def arrived() -> bool | None:
            issue = self.client().issue(key, fields="status")
            return True if issue.fields.status.name == target else None

        try:
            self.calls(lambda: self.client().transition_issue(key, transition) or True, applied=arrived)
        except FatalError as error:
            # Jira refuses a transition the issue has already taken ("not valid for the
            # current state"): if it now shows the target, the move is done.
            if self.calls(arrived) is None:
                return f"{key}: {error.message}"
        return None

    def estimate(self, writes: list[Write]) -> Estimate:
        """The calls ``push(writes)`` would make, when nothing changed in between.

        Reads the project's versions (one call) to know which releases need one. A group of
        more than ``bulk_threshold`` writes of one value is priced as bulk jobs of 1,000 issues
        and the polls each is expected to take (EXPECTED_POLLS; Jira decides how many it takes).
        """
        issues = {w.native_key or w.native_id for w in writes}
        releases = {w.value for w in writes if w.field == RELEASE and w.value}
        missing = len(releases - set(self.versions.known())) if releases else 0
        bulk = bulk_groups(writes, self.config.bulk_threshold, self.targets)
        in_bulk = {id(w) for group in bulk.values() for w in group}
        single = [w for w in writes if id(w) not in in_bulk]
        statuses = [w for w in single if w.field == STATUS]
        edited = {record_of(w) for w in single if w.field != STATUS}
        jobs = sum(calls_for(len({record_of(w) for w in group}), JOB_SIZE) for group in bulk.values())
        bulk_moves = {w.base for key, group in bulk.items() if key[0][0] == STATUS for w in group}
        calls = {
            "compare reads (bulkfetch)": calls_for(len(issues), CHECK_BATCH),
            "changelog reads": calls_for(len(issues), JOB_SIZE if bulk else CHECK_BATCH),
            "version list": 1 if releases else 0,
            "project read": 1 if missing else 0,
            "version creates": missing,
            "issue edits (PUT)": len(edited),
            "transition lookups": len({w.base for w in statuses}),
            "transitions (POST)": len(statuses),
            "bulk transition lookups": len(bulk_moves),
            "bulk jobs": jobs,
            "bulk job polls (expected)": jobs * EXPECTED_POLLS,
        }
        return {"calls": sum(calls.values()), "by_kind": calls,
                "limit": "Jira Cloud rate limits by cost per hour; these are ordinary REST calls"}
