"""Rich descriptions, as people write them in Jira's editor: Atlassian Document Format.

Node and mark shapes follow Atlassian's ADF reference
(developer.atlassian.com/cloud/jira/platform/apis/document/structure/ and its node pages):
text marks strong, em, code and link; bulletList and orderedList of listItems holding
paragraphs; mention (attrs id, text, accessLevel); table of tableRows of tableHeader and
tableCell; panel (attrs panelType); codeBlock (attrs language); date (attrs timestamp in
epoch milliseconds, as text); mediaSingle holding one media (attrs id, type "file",
collection). A seeded request's quirks pick one of four samples; its own text comes first.
"""
from __future__ import annotations

import hashlib
from typing import Any

from sandboxes.seed import SeedRequest

Node = dict[str, Any]


def _text(value: str, *marks: Node) -> Node:
    node: Node = {"type": "text", "text": value}
    if marks:
        node["marks"] = list(marks)
    return node


def _para(*content: Node) -> Node:
    return {"type": "paragraph", "content": list(content)}


def _items(kind: str, *texts: str) -> Node:
    return {"type": kind, "content": [{"type": "listItem", "content": [_para(_text(t))]} for t in texts]}


def _mention(account_id: str, name: str) -> Node:
    return {"type": "mention", "attrs": {"id": account_id, "text": f"@{name}", "accessLevel": ""}}


def _plain(text: str) -> list[Node]:
    paragraphs = []
    for block in text.split("\n\n"):
        nodes: list[Node] = []
        for index, line in enumerate(block.split("\n")):
            if index:
                nodes.append({"type": "hardBreak"})
            if line:
                nodes.append(_text(line))
        paragraphs.append(_para(*nodes) if nodes else {"type": "paragraph"})
    return paragraphs


def _cell(kind: str, value: str) -> Node:
    return {"type": kind, "attrs": {}, "content": [_para(_text(value))]}


def rich_description(request: SeedRequest, owner_account: str | None, owner_name: str | None) -> Node:
    """The request's description with one rich sample after it (``request.quirks.rich_text`` 1-4)."""
    sample = request.quirks.rich_text
    who = [_mention(owner_account, owner_name), _text(" please review")] if owner_account and owner_name else [
        _text("Needs an owner")]
    due = str(int(request.updated.timestamp() * 1000) // 86_400_000 * 86_400_000 + 14 * 86_400_000)
    extra: list[Node]
    if sample == 1:
        extra = [
            _para(_text("Impact: ", {"type": "strong"}), _text("affects "), _text(request.affected_object, {"type": "em"}),
                  _text(" records; see "), _text("the runbook", {"type": "link", "attrs": {"href": "https://wiki.example/ops/runbook"}}),
                  _text(" and the "), _text("Owner.Name", {"type": "code"}), _text(" field.")),
            _items("bulletList", "Update the page layout", "Tell the team in #ops-releases"),
            _para(*who, _text(" before "), {"type": "date", "attrs": {"timestamp": due}}),
        ]
    elif sample == 2:
        extra = [
            _items("orderedList", "Build in the sandbox", "Requester signs off", "Deploy with the release"),
            {"type": "table", "attrs": {"isNumberColumnEnabled": False, "layout": "default"}, "content": [
                {"type": "tableRow", "content": [_cell("tableHeader", "Field"), _cell("tableHeader", "Change")]},
                {"type": "tableRow", "content": [_cell("tableCell", request.affected_object or "Case"),
                                                 _cell("tableCell", request.request_type)]},
            ]},
            {"type": "panel", "attrs": {"panelType": "warning"}, "content": [
                _para(_text("Touches a managed package; check the upgrade notes first."))]},
        ]
    elif sample == 3:
        media = hashlib.sha1(f"{request.seq}:{request.title}".encode()).hexdigest()
        extra = [
            {"type": "codeBlock", "attrs": {"language": "sql"}, "content": [
                _text(f"SELECT Id, Name FROM {request.affected_object or 'Case'} WHERE LastModifiedDate = LAST_N_DAYS:30")]},
            {"type": "mediaSingle", "attrs": {"layout": "center"}, "content": [
                {"type": "media", "attrs": {"id": f"{media[:8]}-{media[8:12]}-{media[12:16]}-{media[16:20]}-{media[20:32]}",
                                            "type": "file", "collection": "", "width": 1280, "height": 720}}]},
            _para(*who),
        ]
    else:
        extra = [
            {"type": "panel", "attrs": {"panelType": "info"}, "content": [
                _items("bulletList", "Current: done by hand", "Wanted: automated")]},
            _para(_text("Done when ", {"type": "strong"}, {"type": "em"}),
                  _text("the report shows it", {"type": "link", "attrs": {"href": "https://reports.example/ops"}}), _text(".")),
        ]
    return {"type": "doc", "version": 1, "content": [*_plain(request.description), *extra]}
