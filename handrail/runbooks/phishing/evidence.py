"""The full parse of a reported message, kept as evidence in the installation's store.

A run's history holds only capped lists (`MailReport`); every URL, domain and attachment of
the message, with each domain's verdict, is stored once as JSON in the intel store under its
own SHA-256, and the run names it by `parse_ref` (`store:json:<sha256>`, in the run's status,
its `phishing.parsed` audit event and the incident's artefacts). The store is the one every
worker shares (PostgreSQL when the ledger is there), so the evidence outlives the worker that
parsed the message and is found from any host: `handrail phishing evidence RUN|REF`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REF_PREFIX = "store:json:"


class EvidenceMissing(LookupError):
    """The reference names nothing this installation can read (one sentence, for the CLI)."""


def store_evidence(store: Any, document: dict[str, Any]) -> str:
    """Store the parse (canonical JSON, so one message's parse is stored once); return its ref."""
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return REF_PREFIX + store.put_blob(data, "json")


def load_evidence(store: Any, ref: str) -> dict[str, Any]:
    """The parse a ref names. Refs written before the store held evidence are file paths on
    the worker that parsed the message; they are read when this host has the file."""
    ref = ref.strip()
    if ref.startswith(REF_PREFIX):
        sha = ref.removeprefix(REF_PREFIX)
        try:
            data = store.get_blob(sha, "json")
        except ValueError:
            raise EvidenceMissing(f"{ref} is not a stored parse reference (store:json:<64 hex digits>)") from None
        except FileNotFoundError:
            raise EvidenceMissing(f"{ref} is not in this installation's store") from None
    elif ref.startswith("/") and ref.endswith(".json"):
        try:
            data = Path(ref).read_bytes()
        except OSError:
            raise EvidenceMissing(f"{ref} was written on the worker that parsed the message and is not on "
                                  "this host") from None
    else:
        raise EvidenceMissing(f"{ref!r} is not a parse reference (store:json:<sha256>)")
    try:
        document = json.loads(data)
    except ValueError:
        raise EvidenceMissing(f"{ref} does not hold a JSON document") from None
    if not isinstance(document, dict):
        raise EvidenceMissing(f"{ref} does not hold a parse")
    return document
