"""Environment-variable names in the config, and values that are secrets pasted in their place.

``auth`` keys name the environment variables that hold the secrets. A name must look like
one (upper-case letters, digits and ``_``, not starting with a digit, at most 64
characters). A value shaped like a credential (long runs of mixed letters and digits,
base64 or token punctuation) is refused as a secret, and no message ever repeats it:
the file it came from may already be in a repository or a ticket.
"""
from __future__ import annotations

import re

MAX_LENGTH = 64
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_RUN = re.compile(r"[A-Za-z0-9]+")
_TOKEN_PUNCTUATION = frozenset("+/=.-~:")
_LONG_RUN = 16
_CLASS_CHANGES = 4


def _class(char: str) -> str:
    return "digit" if char.isdigit() else "upper" if char.isupper() else "lower" if char.islower() else "other"


def _class_changes(text: str) -> int:
    """How often the text switches between digits, upper- and lower-case letters (words rarely do)."""
    classes = [_class(c) for c in text if c.isalnum()]
    return sum(1 for a, b in zip(classes, classes[1:], strict=False) if a != b)


def looks_like_secret(value: str) -> bool:
    """Whether ``value`` is shaped like a token, key or password rather than a variable name.

    Hex keys (a Salesforce consumer secret), base62 tokens (GitHub, Slack), base64 and
    Atlassian or Airtable tokens all have a long stretch of letters and digits mixed
    at random; names like ``RELSYNC_SF_CLIENT_SECRET`` or ``X509_PASSWORD_2026`` do not.
    """
    text = value.strip()
    if len(text) < _LONG_RUN:
        return False
    if any(len(run) >= _LONG_RUN and _class_changes(run) >= _CLASS_CHANGES for run in _RUN.findall(text)):
        return True
    return any(c in _TOKEN_PUNCTUATION for c in text) and _class_changes(text) >= _CLASS_CHANGES


def env_name_problem(value: str, example: str) -> str | None:
    """What is wrong with ``value`` as an environment-variable name (None: nothing), never quoting it.

    ``example`` is a good name for the same key, shown in the message.
    """
    if looks_like_secret(value):
        return (
            "this looks like a secret itself; it must be the name of an environment variable that holds the "
            f"secret (like {example}). Secrets never go in the config file: move it to the environment, "
            "and replace it at its issuer if this file was ever shared or committed"
        )
    if len(value) <= MAX_LENGTH and _NAME.fullmatch(value):
        return None
    if not value:
        wrong = "is empty"
    elif len(value) > MAX_LENGTH:
        wrong = f"is {len(value)} characters long (at most {MAX_LENGTH})"
    elif value[0].isdigit():
        wrong = "starts with a digit"
    elif any(c.islower() for c in value):
        wrong = "has lower-case letters"
    else:
        wrong = "has characters other than A-Z, 0-9 and _"
    return (
        f"must be the name of an environment variable: upper-case letters, digits and _, not starting with a "
        f"digit, at most {MAX_LENGTH} characters (like {example}); this one {wrong}"
    )
