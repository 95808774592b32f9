"""Keep secrets out of logs, the audit and case evidence: detect them, then replace them.

Detection, not a key list alone: a credential turns up wherever a human pasted it — a
``password=`` in an alert's text, ``https://user:pass@host`` in a URL, ``?api_key=`` in a
query string, a JWT or an AWS key in a log line. Three rules, one module, used by the
structlog processor, the ledger and the case/takedown actions:

* **by name** — a mapping key whose last word names a secret (``password``, ``token``,
  ``api_key``, ``client_secret``, ``authorization``, ``cookie``, ...) has its value
  replaced. Words, not substrings: ``tokens_used``, ``max_tokens``, ``token_type`` and
  ``idempotency_key`` are ordinary data and stay.
* **by format** — known token shapes anywhere in a string: ``Bearer``/``Basic``
  credentials, userinfo in URLs, secret query parameters, ``name=value`` with a secret
  name, JWTs, AWS access key ids, GitHub/Slack/Google/Stripe tokens, private-key blocks.
* **by shape** — ``name=value`` where the value looks machine-random (32+ characters of
  mixed case and digits), whatever the name.

Every pattern is linear-time (anchored at a literal or a word start, bounded repeats), so
redacting hostile text costs no more than reading it. Inverses and before-states are
*never* redacted (:func:`redact_record`): they are stored to be replayed, not logged, and a
``[redacted]`` replayed into a tool would be a corruption.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

# -- by name -----------------------------------------------------------------------------
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "apikey", "authorization",
    "auth", "cookie", "credential", "credentials", "privatekey", "accesskey", "secretkey",
    "signingkey", "sessionid", "sessiontoken", "clientsecret", "xapikey", "apitoken", "pat",
})
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "signing", "encryption", "master", "x-api"})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def secret_name(name: str) -> bool:
    """Whether a key or parameter name names a secret (by its last word or two)."""
    words = [w.lower() for w in _WORDS.findall(name[:128])]
    if not words:
        return False
    last = words[-1]
    if last in _SECRET_WORDS:
        return True
    if len(words) >= 2 and (words[-2] + last in _SECRET_WORDS or (last == "key" and words[-2] in _KEY_QUALIFIERS)):
        return True
    return False


# -- by format ---------------------------------------------------------------------------
_NAMES = (r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key"
          r"|private[_-]?key|client[_-]?secret|auth[_-]?token|access[_-]?token|refresh[_-]?token|id[_-]?token"
          r"|session[_-]?token|aws[_-]?secret[_-]?access[_-]?key|x-api-key")
_FORMATS: list[tuple[re.Pattern[str], str]] = [
    # private key blocks: the body class stops at "-", so each block is scanned once
    (re.compile(r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----[A-Za-z0-9+/=\s]{0,20000}"
                r"(?:-----END[A-Z ]{0,40}PRIVATE KEY-----)?"), REDACTED),
    # Authorization headers, whatever the scheme; Bearer tokens anywhere
    (re.compile(r"(?i)\b((?:proxy-)?authorization\s{0,3}[:=]\s{0,3}[\"']?)(?!\[redacted\])[^\r\n\"']{1,4096}"),
     r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s{1,3})(?!\[redacted\])[A-Za-z0-9._~+/=-]{8,4096}"), r"\1" + REDACTED),
    # user:password@ in URLs (the user stays, it identifies; the password goes)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]{0,20}://[^\s/:@]{0,256}):[^\s/@]{1,256}@"), r"\1:" + REDACTED + "@"),
    # secret query parameters
    (re.compile(r"(?i)([?&;](?:" + _NAMES + r"|key|sig|signature|code|auth|access_token)=)[^&#\s\"'<>]{1,4096}"),
     r"\1" + REDACTED),
    # name = value / name: value in free text (JSON-ish quotes allowed)
    (re.compile(r"(?i)\b(" + _NAMES + r")(\b[\"']?\s{0,3}[:=]\s{0,3}[\"']?)(?!\[redacted\])"
                r"(?:\"[^\"\n]{1,512}\"|'[^'\n]{1,512}'|[^\s,;&\"'<>]{1,512})"), r"\1\2" + REDACTED),
    # JSON Web Tokens
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,4096}\.eyJ[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{0,4096}"), REDACTED),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"), REDACTED),
    # GitHub, Slack, Google API, Stripe, npm tokens
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,255}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), REDACTED),
    (re.compile(r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,255}"), REDACTED),
    (re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), REDACTED),
]

# -- by shape ----------------------------------------------------------------------------
_ASSIGNED = re.compile(r"\b([A-Za-z][\w.-]{0,63})(\s{0,3}[:=]\s{0,3}[\"']?)([A-Za-z0-9+/_-]{32,512}={0,2})(?![\w+/=-])")


def _random_looking(value: str) -> bool:
    """Mixed case and digits: hex digests, UUIDs and words do not qualify."""
    return (any(c.isupper() for c in value) and any(c.islower() for c in value)
            and sum(c.isdigit() for c in value) >= 2)


# `SHA256:<base64>` is a key fingerprint or a digest (what ssh-keygen -l prints): public, never a secret.
_DIGEST_LABELS = frozenset({"md5", "sha1", "sha224", "sha256", "sha384", "sha512"})


def _by_shape(match: re.Match[str]) -> str:
    if match.group(1).lower() in _DIGEST_LABELS:
        return match.group(0)
    if _random_looking(match.group(3)):
        return match.group(1) + match.group(2) + REDACTED
    return match.group(0)


# "Basic <base64>" outside a header: a credential only if it decodes to "user:password".
_BASIC = re.compile(r"\b(Basic\s{1,3})([A-Za-z0-9+/]{8,4096}={0,2})(?![\w+/=])", re.IGNORECASE)


def _basic(match: re.Match[str]) -> str:
    import base64
    import binascii

    try:
        decoded = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return match.group(1) + REDACTED if b":" in decoded else match.group(0)


# -- a quick look first --------------------------------------------------------------------
# Every pattern above needs one of these anchors in the text: a secret's name or a word in
# it, a scheme's "://", a query's "x=", a token prefix, or a separator followed by 32
# token characters of both cases (the by-shape rule). Most strings the ledger and the logs see (ids, kinds,
# addresses, timestamps, hashes) have none, and then one scan replaces fifteen.
# `tests/test_redact.py` checks the look agrees with the full redaction.
_MAYBE = re.compile(
    r"(?i:authorization|bearer|basic\s|pass|pwd|secret|token|key|auth|sig|code|://|-----begin)"
    r"|[?&;][\w.-]{1,64}="
    r"|eyJ|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|gh[pousr]_|github_pat_|xox[abprs]-|AIza|[rs]k_(?:live|test)_|npm_"
    # by shape: only a value with both cases can look random (hex digests and UUIDs cannot)
    r"|[:=]\s{0,3}[\"']?(?=[A-Za-z0-9+/_-]{0,511}[A-Z])(?=[A-Za-z0-9+/_-]{0,511}[a-z])[A-Za-z0-9+/_-]{32}"
)


def redact_text(text: str) -> str:
    """Every detected secret in a string replaced by ``[redacted]``."""
    if len(text) < 8 or _MAYBE.search(text) is None:
        return text
    return _redact_all(text)


def _redact_all(text: str) -> str:
    """Every pattern, in order (what `redact_text` does when the quick look finds an anchor)."""
    for pattern, replacement in _FORMATS:
        text = pattern.sub(replacement, text)
    text = _BASIC.sub(_basic, text)
    return _ASSIGNED.sub(_by_shape, text)


def redact(value: Any) -> Any:
    """A copy of ``value`` (mappings, sequences, strings) with secrets replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and secret_name(k) and v not in (None, "")
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


# Parts of a stored change record that are replayed (rollback, verification): never redacted.
STORED_VERBATIM = frozenset({"before", "after", "inverse"})


def redact_record(record: dict[str, Any]) -> dict[str, Any]:
    """A change record for storage: everything redacted but what is replayed."""
    return {k: (v if k in STORED_VERBATIM else redact(v)) for k, v in record.items()}


def redact_processor(_logger, _name, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the last step before rendering."""
    return redact(event_dict)
