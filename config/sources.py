"""One model per source system; what they share lives in SourceBase."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from config.base import KeyPathError, Strict, _resolve_path
from config.envnames import env_name_problem, looks_like_secret
from config.fieldmap import FieldMapping, WriteTargets, check_write_status

_SECRET_WORDS = re.compile(r"token|password|passwd|secret|api_?key|credential|^pat$", re.IGNORECASE)


class EnvAuth(Strict):
    """Credentials by environment-variable name: secrets never live in the config file."""

    secret_hint: ClassVar[str] = "token_env: RELSYNC_TOKEN"
    env_prefix: ClassVar[str] = "RELSYNC_"

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields and looks_like_secret(str(key)):
                    raise KeyPathError((), "a key here looks like a secret; secrets never go in the config file")
                if key not in cls.model_fields and _SECRET_WORDS.search(str(key)):
                    env_key = cls.secret_hint.split(":")[0]
                    raise KeyPathError(
                        (key,),
                        f"secrets never go in the config file; put the secret in an environment "
                        f"variable and use {env_key} to name it (e.g. {cls.secret_hint})",
                    )
        return data

    @field_validator("*")
    @classmethod
    def _env_names(cls, value: Any, info: ValidationInfo) -> Any:
        # The message never quotes the value: it may be a pasted secret.
        key = info.field_name or ""
        if isinstance(value, str) and key.endswith("_env"):
            if problem := env_name_problem(value, cls.env_prefix + key.removesuffix("_env").upper()):
                raise ValueError(problem)
        return value


JiraTokenKind = Literal["api_token", "scoped", "service_account"]


class JiraAuth(EnvAuth):
    """Jira Cloud credentials by environment-variable name, and which kind of token it is.

    ``api_token`` (the default with an email): a personal API token, sent as Basic
    email:token to the site. ``scoped`` and ``service_account``: a token with scopes,
    which Jira Cloud only takes through the api.atlassian.com gateway; sent as Basic
    with ``email_env``, as Bearer without. A token with no email and no kind is
    refused: Jira Cloud would refuse a personal API token sent alone.
    """

    secret_hint: ClassVar[str] = "token_env: RELSYNC_JIRA_TOKEN"
    env_prefix: ClassVar[str] = "RELSYNC_JIRA_"

    email_env: str | None = None
    token_env: str
    token_kind: JiraTokenKind | None = None

    @model_validator(mode="after")
    def _kind_is_known(self) -> JiraAuth:
        if self.email_env is None and self.token_kind in (None, "api_token"):
            raise KeyPathError(
                ("email_env",),
                "a personal API token only works with the account's email (Basic auth on the site URL): name "
                "the variable holding it (like RELSYNC_JIRA_EMAIL); for a scoped or service-account token, "
                "say token_kind: scoped or token_kind: service_account instead",
            )
        return self

    @property
    def kind(self) -> JiraTokenKind:
        """The token's kind: as configured, else a personal API token."""
        return self.token_kind or "api_token"

    @property
    def through_gateway(self) -> bool:
        """Whether calls go through the api.atlassian.com gateway (tokens with scopes)."""
        return self.kind != "api_token"


class AirtableAuth(EnvAuth):
    """An Airtable personal access token, by environment-variable name."""

    secret_hint: ClassVar[str] = "token_env: RELSYNC_AIRTABLE_TOKEN"
    env_prefix: ClassVar[str] = "RELSYNC_AIRTABLE_"

    token_env: str


class SalesforceAuth(EnvAuth):
    """A Salesforce External Client App's OAuth client credentials (and optional refresh token)."""

    secret_hint: ClassVar[str] = "client_secret_env: RELSYNC_SF_CLIENT_SECRET"
    env_prefix: ClassVar[str] = "RELSYNC_SF_"

    client_id_env: str
    client_secret_env: str
    refresh_token_env: str | None = None


class SourceBase(Strict):
    """What every source has: where it is, how to trust it, the mapping and the write-back."""

    url: str
    ca_bundle: str | None = None
    overlap_seconds: int = Field(default=120, ge=0)
    timeout_seconds: float = Field(default=30, gt=0)
    stop_after_server_errors: int = Field(default=5, ge=1)
    """Server errors (5xx, timeouts) in a row after which a run sends nothing more to the source."""
    history_max_calls: int = Field(default=50, ge=0)
    """API calls one run may spend importing the source's own history (Jira changelog, Salesforce field
    history; Airtable has none); the next run continues where it stopped. 0 turns the import off."""
    fields: FieldMapping
    write: WriteTargets = Field(default_factory=WriteTargets)

    @field_validator("url")
    @classmethod
    def _site(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError(f"{value!r} is not a site address like https://your-site.example.com")
        return value.rstrip("/")

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = _resolve_path(value, info)
        if (info.context or {}).get("base_dir") is not None and not Path(path).is_file():
            raise ValueError(f"no file at {path} (the CA certificate bundle to trust)")
        return path

    @model_validator(mode="after")
    def _write_back_reads_back(self) -> SourceBase:
        check_write_status(self.fields, self.write)
        return self


class JiraSource(SourceBase):
    """A Jira Cloud project as a source of change requests."""

    kind: Literal["jira"]
    auth: JiraAuth
    project: str
    jql: str | None = None
    page_size: int = Field(default=100, ge=1, le=100)
    reconcile_every_hours: float = Field(default=24, ge=0)
    """Jira reports no deletions: this often, list the issue ids (5000 a call) to find them."""
    metadata_cache_hours: float = Field(default=24, ge=0)
    """How long the site's server info and field list are kept in the store (0: asked on every run);
    a search refused for an unknown field asks again at once."""
    bulk_threshold: int = Field(default=10, ge=1)
    """Writes of one value (one release, one status) to more issues than this go through Jira's
    bulk operations, 1,000 issues a job; smaller groups are written issue by issue."""
    cloud_id: str | None = None
    """The site's cloud id, for tokens with scopes; looked up from ``{url}/_edge/tenant_info`` when absent."""
    gateway: str | None = None
    """The API gateway tokens with scopes go through (default https://api.atlassian.com)."""

    @field_validator("cloud_id")
    @classmethod
    def _cloud_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", value):
            raise ValueError(f"{value!r} is not a cloud id like 1a11d016-8984-4c3e-b9ab-142dd06acb1b "
                             "(https://your-site.atlassian.net/_edge/tenant_info shows it)")
        return value

    @field_validator("gateway")
    @classmethod
    def _gateway(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s]+/?", value):
            raise ValueError(f"{value!r} is not a gateway address like https://api.atlassian.com")
        return None if value is None else value.rstrip("/")

    @model_validator(mode="after")
    def _gateway_needs_scopes(self) -> JiraSource:
        for key in ("cloud_id", "gateway"):
            if getattr(self, key) is not None and not self.auth.through_gateway:
                raise KeyPathError((key,), f"{key} only applies to tokens with scopes (auth.token_kind: scoped or "
                                   "service_account); a personal API token goes to the site URL")
        return self

    @field_validator("project")
    @classmethod
    def _project_key(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]+", value):
            raise ValueError(f"{value!r} is not a Jira project key like OPS (letters, digits and _)")
        return value.upper()


class AirtableSource(SourceBase):
    """An Airtable table as a source of change requests.

    ``modified_field`` names a last-modified-time field: pulls then ask only for
    records modified since the watermark (minus the overlap). Without it every
    pull lists the table and changes are found by content hash. Deleted records are
    found by listing record ids: on every full listing for free, otherwise every
    ``reconcile_every_hours`` (0: on every run, at ceil(N/100) extra calls).
    """

    kind: Literal["airtable"]
    url: str = "https://api.airtable.com"
    auth: AirtableAuth
    base: str
    table: str = Field(min_length=1)
    view: str | None = None
    formula: str | None = None
    modified_field: str | None = None
    reconcile_every_hours: float = Field(default=24, ge=0)
    page_size: int = Field(default=100, ge=1, le=100)
    requests_per_second: float = Field(default=5, gt=0, le=5)
    penalty_seconds: float = Field(default=30, ge=0)

    @field_validator("base")
    @classmethod
    def _base_id(cls, value: str) -> str:
        if not re.fullmatch(r"app[A-Za-z0-9]{14}", value):
            raise ValueError(f"{value!r} is not an Airtable base id like appXXXXXXXXXXXXXX (from the base's URL)")
        return value


class SalesforceSource(SourceBase):
    """A Salesforce object (Case or a custom object) as a source of change requests.

    ``url`` is the org's My Domain (``https://acme.my.salesforce.com``): relsync
    gets a token from its OAuth endpoint. ``record_type`` and ``where`` narrow the
    selection; the run stops cleanly once ``quota_share`` of the daily API limit is
    used, and the next run continues where it stopped.
    """

    kind: Literal["salesforce"]
    auth: SalesforceAuth
    api_version: str = "59.0"
    object: str = "Case"
    record_type: str | None = None
    where: str | None = None
    page_size: int = Field(default=2000, ge=200, le=2000)
    quota_share: float = Field(default=0.8, gt=0, le=1)
    reconcile_every_hours: float = Field(default=24, ge=0)
    """How often Get Deleted is asked for hard deletes (0: every run); soft deletes come with every pull."""

    @field_validator("object")
    @classmethod
    def _object_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value):
            raise ValueError(f"{value!r} is not an sObject API name like Case or Change_Request__c")
        return value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2}\.0", value):
            raise ValueError(f"{value!r} is not an API version like 59.0")
        return value


Source = Annotated[JiraSource | AirtableSource | SalesforceSource, Field(discriminator="kind")]
"""Any configured source, told apart by its ``kind``."""
