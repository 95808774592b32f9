"""Starting a run from the CLI: one helper for every runbook, and it signs the request.

The requester of a run started by a person is the verified signer (handrail.gate.requests):
`start_run` finds the person's signing key (HANDRAIL_SIGNING_KEY, or the key `handrail keys
init` made under HANDRAIL_HOME/keys), builds the trigger in the key owner's name, signs the
request over it, and starts the workflow with the signature in its memo. `--requested-by`
is only a check that the key belongs to that person.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import workflow as temporal_workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from handrail.gate import requests, signatures
from handrail.ops.config import Settings
from starter.output import fail
from starter.signing import load_signer


async def start_run(
    client: Client,
    settings: Settings,
    run: Callable[..., Any],
    make_trigger: Callable[[str], BaseModel],
    run_id: str | Callable[[BaseModel], str],
    *,
    requested_by: str | None,
    duplicate: str,
    key: Path | None = None,
) -> WorkflowHandle:
    """Start `run` with `make_trigger(requester)`, signed by the requester; `duplicate` is the
    sentence shown when the run id exists already ({run_id} is filled in)."""
    signer = load_signer(settings, key, requested_by)
    trigger = make_trigger(signer.user)
    rid = run_id(trigger) if callable(run_id) else run_id
    name = temporal_workflow._Definition.must_from_run_fn(run).name
    document = requests.new_request(name, rid, trigger, signer.user)
    armored = signer.sign(document.canonical().encode(), signatures.REQUEST_NAMESPACE)
    try:
        return await client.start_workflow(
            run,
            trigger,
            id=rid,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={requests.REQUEST_MEMO: requests.request_memo(document, armored)},
        )
    except WorkflowAlreadyStartedError:
        fail(duplicate.format(run_id=rid))
