"""A Jira project's versions (fix versions), found by name and created on demand when the account may.

relsync writes each release as the fix version of that name. The project's versions are
listed once per run; a missing one is created (``POST version``). Creating takes the
Administer Projects permission, which an ordinary integration account lacks: Jira then
answers 404 naming the project (403 on some sites), the writes needing a new version
fail with a message naming the permission, and no other create is tried this run. A
create that timed out or met a server error may have landed: the versions are listed
again before it is repeated or reported failed.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from jira import JIRA

from connectors.calls import ApiCalls
from connectors.errors import ConnectorError, FatalError, PermissionDenied

SYSTEM = "jira"


class VersionRefused(ConnectorError):
    """Jira will not create a version for this account: the writes needing one fail, the others go on."""


class ProjectVersions:
    """The versions of one project, name -> id, through ``calls`` on the client ``client()`` returns."""

    def __init__(self, calls: ApiCalls, client: Callable[[], JIRA], project: str) -> None:
        self.calls = calls
        self.client = client
        self.project = project
        self._known: dict[str, str] | None = None
        self._project_id: str | None = None
        self._refused: str | None = None  # Jira's answer to a create the account may not make

    def known(self) -> dict[str, str]:
        """The project's versions, name -> id (listed once per run)."""
        if self._known is None:
            self._known = self._listed()
        return self._known

    def _listed(self) -> dict[str, str]:
        return {v.name: v.id for v in self.calls(lambda: self.client().project_versions(self.project))}

    def id_of(self, name: str) -> str:
        """The id of version ``name``, created if need be; ``VersionRefused`` when the account may not create it."""
        versions = self.known()
        if name in versions:
            return versions[name]
        if self._refused is None:
            created = self._create(name, versions)
            if created is not None:
                return created
        raise VersionRefused(SYSTEM, f"Jira: creating version {name!r} needs the Administer Projects permission for project "
                                     f"{self.project} ({self._refused}); ask a Jira admin for it, or create the version in Jira")

    def _create(self, name: str, versions: dict[str, str]) -> str | None:
        """Create version ``name``: its id, or None once Jira refused the account (``_refused`` says why)."""
        client = self.client()
        if self._project_id is None:
            self._project_id = self.calls(lambda: client.project(self.project)).id
        body = json.dumps({"name": name, "projectId": int(self._project_id)})
        url = client._get_url("version")

        def landed() -> str | None:
            versions.update(self._listed())
            return versions.get(name)

        try:
            # The library's create_version() sleeps a second after every create.
            versions[name] = self.calls(lambda: str(client._session.post(url, data=body).json()["id"]), applied=landed)
            return versions[name]
        except PermissionDenied as error:
            self._refused = error.message
        except FatalError as error:
            if error.status == 404:
                self._refused = error.message
                return None
            if (found := landed()) is None:  # "already exists" means someone made it since the list
                raise
            return found
        return None
