"""Starting a run from the CLI: one helper for every runbook, and it signs the request.

The requester of a run started by a person is the verified signer (handrail.gate.requests):
`start_run` finds the person's signing key (HANDRAIL_SIGNING_KEY, or the key `handrail keys
init` made under HANDRAIL_HOME/keys), builds the trigger in the key owner's name, signs the
request over it, and starts the workflow with the signature in its memo. `--requested-by`
is only a check that the key belongs to that person.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import workflow as temporal_workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.gate import requests, signatures, signing
from handrail.ops.config import Settings
from starter.output import fail
from starter.signing import load_signer
from workflows.gate import start_attributes


async def start_run(
    client: Client,
    settings: Settings,
    run: Callable[..., Any],
    make_trigger: Callable[[str], BaseModel],
    run_id: str | Callable[[BaseModel], str],
    *,
    requested_by: str | None,
    duplicate: str,
    runbook: str,
    key: Path | None = None,
) -> WorkflowHandle:
    """Start `run` with `make_trigger(requester)`, signed by the requester; `duplicate` is the
    sentence shown when the run id exists already ({run_id} is filled in)."""
    signer = load_signer(settings, key, requested_by)
    trigger = make_trigger(signer.user)
    rid = run_id(trigger) if callable(run_id) else run_id
    try:
        return await client.start_workflow(
            run,
            trigger,
            id=rid,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo=signed_request(signer, run, rid, trigger),
            search_attributes=start_attributes(runbook, signer.user),  # no upsert for the first state
        )
    except WorkflowAlreadyStartedError:
        fail(duplicate.format(run_id=rid))


def signed_request(signer, run: Callable[..., Any], run_id: str, trigger: BaseModel,
                   issued_at: datetime | None = None) -> dict[str, Any]:
    """The memo that proves who asked: the requester's signature over the workflow, run id and
    trigger. `issued_at` defaults to now (a test server whose clock runs ahead passes its own)."""
    name = temporal_workflow._Definition.must_from_run_fn(run).name
    document = signing.new_request(name, run_id, trigger, signer.user, issued_at=issued_at)
    armored = signer.sign(document.canonical().encode(), signatures.REQUEST_NAMESPACE)
    return {requests.REQUEST_MEMO: requests.request_memo(document, armored)}
