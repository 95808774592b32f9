"""The privilege guardrail's side effects: read an IAM event and the facts around it.

These activities decide nothing: they report what IAM, the change platform, the policy's
standing exceptions and the CMDB say, and the workflow decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from temporalio import activity

from activities.context import WorkerContext
from activities.errors import tool_failure
from activities.triggers import valid_only
from handrail.runbooks.privilege import IamPoll, MarkEventRequest, PrivilegeFacts, PrivilegeTrigger, valid_event_id
from handrail.tools.errors import Conflict, NotFound, ToolError

DEFAULT_HIGH_PROFILE_TAGS = ("executive",)




def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class PrivilegeActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.settings, self.tools, self.ledger = ctx.settings, ctx.tools, ctx.ledger

    def _settings(self) -> dict[str, Any]:
        """`[settings.privilege]` of the policy: standing exceptions, high-profile tags."""
        return dict(self.ctx.policy().settings.get("privilege") or {})

    @activity.defn
    async def privilege_facts(self, trigger: PrivilegeTrigger) -> PrivilegeFacts:
        event_id = trigger.event_id.strip()
        facts = PrivilegeFacts(event_id=event_id)
        if not valid_event_id(event_id):
            facts.problem = f"{trigger.event_id!r} is not an IAM event id (e.g. IAM-EVT-0003)"
            return facts
        iam = self.tools.iam
        try:
            event = await iam.get_event(event_id)
        except NotFound:
            facts.problem = f"IAM has no event {event_id}"
            return facts
        except ValidationError as exc:
            facts.problem = f"IAM event {event_id} is malformed ({exc.error_count()} field error(s))"
            return facts
        except ToolError as exc:
            raise tool_failure(exc, f"reading IAM event {event_id} failed") from None
        if not event.principal.strip() or not event.group.strip():
            facts.problem = f"IAM event {event_id} is malformed (no principal or no group)"
            return facts
        facts.kind, facts.principal, facts.principal_type = event.kind, event.principal, event.principal_type
        facts.group, facts.actor, facts.at = event.group, event.actor, event.at
        facts.change_ticket = event.change_ticket
        try:
            group = await iam.get_group(event.group)
        except NotFound:
            facts.problem = f"IAM event {event_id} names group {event.group!r}, which IAM does not have"
            return facts
        except ToolError as exc:
            raise tool_failure(exc, f"reading IAM group {event.group} failed") from None
        facts.privileged = bool(event.privileged or group.privileged)
        facts.is_member = event.principal in group.members
        conf = self._settings()
        facts.standing_exception = any(
            str(e.get("principal")) == event.principal and str(e.get("group", "*")) in (event.group, "*")
            for e in conf.get("standing_exceptions", []) if isinstance(e, dict)
        )
        try:
            if event.change_ticket:
                ticket = await iam.get_change(event.change_ticket)
                facts.ticket_status = ticket.status if ticket else "unknown"
                if ticket is not None:
                    at, start, end = _when(event.at), _when(ticket.window_start), _when(ticket.window_end)
                    facts.ticket_in_window = (at is not None and (start is None or start <= at)
                                              and (end is None or at <= end))
            await self._profile(facts, list(conf.get("high_profile_tags") or DEFAULT_HIGH_PROFILE_TAGS))
        except ToolError as exc:
            raise tool_failure(exc, f"gathering facts for IAM event {event_id} failed") from None
        return facts

    async def _profile(self, facts: PrivilegeFacts, wanted: list[str]) -> None:
        cmdb = self.tools.cmdb
        if facts.principal_type == "device":
            devices = await cmdb.list_devices(hostname=facts.principal)
            facts.devices = [facts.principal]
        else:
            devices = await cmdb.list_devices(owner=facts.principal)
            facts.devices = sorted(d.hostname for d in devices)
        tags = {t for d in devices for t in d.tags}
        facts.high_profile_tags = sorted(tags & set(wanted))
        facts.high_profile = bool(facts.high_profile_tags)

    @activity.defn
    async def new_iam_events(self, poll: IamPoll) -> list[PrivilegeTrigger]:
        try:
            events = await self.tools.iam.list_events("new")
        except ToolError as exc:
            raise tool_failure(exc, "listing new IAM events failed") from None
        return valid_only(lambda e: PrivilegeTrigger(event_id=e.id, requested_by=poll.requested_by), events)

    @activity.defn
    async def mark_iam_event(self, request: MarkEventRequest) -> str:
        try:
            await self.tools.iam.mark_event_processed(
                request.event_id, by="handrail", outcome=request.outcome[:200], idempotency_key=request.idempotency_key
            )
        except Conflict:
            return "already processed"
        except ToolError as exc:
            raise tool_failure(exc, f"marking IAM event {request.event_id} processed failed") from None
        return "processed"

