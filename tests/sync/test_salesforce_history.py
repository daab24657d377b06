"""Salesforce field history: the sandbox's CaseHistory and <Object>__History through simple-salesforce, and its import."""
from __future__ import annotations

from sandboxes import edits
from sync.audit import request_history, verify_chain
from sync.store import open_store
from tests.sync import test_salesforce_sync as org_tests

authority = org_tests.authority  # the org fixtures, shared
make_org = org_tests.make_org

HISTORY_QUERY = "GET /services/data/v{version}/query/"


def person(org, name: str, email: str):
    return edits.salesforce_client_as({"salesforce": {"url": org.url}}, str(org.ca_file), name, email)


def test_case_history_is_written_by_a_save_and_queried_as_salesforce_serves_it(make_org):
    org = make_org(10)
    case_id = org.sf().query("SELECT Id FROM Case WHERE RecordType.Name = 'Change Request' ORDER BY Id LIMIT 1")["records"][0]["Id"]
    priya = person(org, "Priya Natarajan", "priya.natarajan@example.com")
    before = org.sf().Case.get(case_id)["Priority"]
    priya.Case.update(case_id, {"Priority": "Critical" if before != "Critical" else "Low", "Description": "untracked"})

    found = org.sf().query(
        "SELECT Id, CaseId, Field, OldValue, NewValue, CreatedDate, CreatedBy.Name FROM CaseHistory "
        f"WHERE CaseId = '{case_id}' ORDER BY CreatedDate ASC, Id ASC")

    (row,) = found["records"]  # one tracked field changed; Description is not tracked
    assert row["attributes"]["type"] == "CaseHistory" and row["Id"].startswith("017")
    assert (row["CaseId"], row["Field"], row["OldValue"]) == (case_id, "Priority", before)
    assert row["NewValue"] in ("Critical", "Low") and row["CreatedBy"]["Name"] == "Priya Natarajan"
    assert row["CreatedDate"].endswith("+0000")
    assert org.sf().Case.get(case_id)["LastModifiedById"] == priya.query("SELECT CreatedById FROM CaseHistory "
                                                                        f"WHERE CaseId = '{case_id}'")["records"][0]["CreatedById"]


def test_new_value_cannot_be_filtered_on_as_in_salesforce(make_org):
    org = make_org(3)
    import pytest
    from simple_salesforce.exceptions import SalesforceMalformedRequest

    with pytest.raises(SalesforceMalformedRequest):
        org.sf().query("SELECT Id FROM CaseHistory WHERE NewValue = 'High'")


def test_a_persons_edit_shows_in_the_audit_with_their_name_and_relsyncs_writes_are_matched(make_org):
    org = make_org(40)
    first = org.run()
    assert first.exit_code == 0, first.messages
    # The mapped fields' history is imported (release and status); the planned date and phase
    # relsync also writes are audited from its pushes and from pulled differences.
    written = org.rows("select request, field, value from outbox where state = 'done' and field in ('release', 'status')")
    assert written
    second = org.run()  # relsync's own writes are in CaseHistory now: matched to its pushes
    assert second.history["salesforce"]["matched"] == len(written)
    assert second.history["salesforce"]["imported"] == 0

    key = written[0]["request"]
    case_id = key.split(":", 1)[1]
    priya = person(org, "Priya Natarajan", "priya.natarajan@example.com")
    current = org.sf().Case.get(case_id)["Subject"]
    # Modstamps have whole seconds: an edit in the very second of relsync's last write would
    # look like the version already imported (until the org's next change asks again).
    org.knob("/salesforce/advance-clock", {"seconds": 1})
    priya.Case.update(case_id, {"Subject": f"{current} (reworded)"})
    org.reset_calls()

    third = org.run()

    assert third.exit_code == 0, third.messages
    assert org.calls().get(HISTORY_QUERY) == 1
    db = open_store(org.config.store)
    try:
        events = [e for e in request_history(db, key) if e["origin"] == "history"]
        assert verify_chain(db).ok
    finally:
        db.close()
    assert [(e["actor"], e["field"], e["old"], e["new"]) for e in events] == [
        ("Priya Natarajan", "title", current, f"{current} (reworded)")]
    fourth = org.run()
    assert fourth.history["salesforce"]["calls"] == 0  # nothing changed since: no history query
