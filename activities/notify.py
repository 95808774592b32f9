"""Telling approvers: send one notice over every channel the policy names, never failing.

Started by the gate (workflows/notify.py) when a step starts waiting, escalates and is
decided. It reads the channels from the policy and their secrets from the worker's
environment, so the workflow history holds the notice and channel names only. Each channel
is tried a few times; what still fails is audited as `notify.failed` and the activity
returns normally: a broken chat webhook never holds up or fails a run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from temporalio import activity

from activities.context import WorkerContext
from activities.ledger_io import off_loop
from handrail.actions.intel import SET_PREFIX, is_set_target
from handrail.gate.models import AuditEvent
from handrail.notify import channels
from handrail.notify.message import Batch, Notice, NotifyResult
from handrail.notify.settings import notify_settings
from handrail.ops.log import get_logger

FIRST_MEMBERS = 10


class NotifyActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @activity.defn
    async def notify_approvers(self, notice: Notice) -> NotifyResult:
        log = get_logger(run_id=notice.run_id, step_id=notice.step_id, notice=notice.event)
        result = NotifyResult()
        try:
            settings = notify_settings(self.ctx.policy())
        except Exception as exc:  # a broken policy section: nobody can be told, say so in the audit
            result.failed["*"] = str(exc)[:300] or type(exc).__name__
            settings = None
        if settings is not None:
            notice = await self._with_batch(notice)
            outcomes = await asyncio.gather(*(self._one(notice, c, settings) for c in settings.channels))
            for channel, problem in zip(settings.channels, outcomes, strict=True):
                if problem is None:
                    result.sent.append(channel.name)
                else:
                    result.failed[channel.name] = problem
        await off_loop(self.ctx.ledger.append, self._audit(notice, result))
        for name, problem in result.failed.items():
            log.warning("approvers could not be notified", channel=name, error=problem)
        if result.sent:
            log.info("approvers notified", channels=result.sent)
        return result

    async def _one(self, notice: Notice, channel, settings) -> str | None:
        try:
            await channels.send(self.ctx.tools.http, notice, channel, settings)
        except channels.ChannelFailed as exc:
            return str(exc)
        return None

    async def _with_batch(self, notice: Notice) -> Notice:
        """A batch target (`set:<sha256>`) as count and first members, read from the worker's store."""
        if not is_set_target(notice.change.target):
            return notice

        def read() -> Batch | None:
            from handrail.intel.state import difference, entries_text

            store = self.ctx.intel.store
            try:
                members = store.get_set(notice.change.target[len(SET_PREFIX):])
                if notice.change.params.get("except"):
                    members = difference(members, store.get_set(str(notice.change.params["except"])))
                text = entries_text(members)
            except (OSError, ValueError):
                return None
            return Batch(count=len(text), first=text[:FIRST_MEMBERS])

        return notice.model_copy(update={"batch": await asyncio.to_thread(read)})

    @staticmethod
    def _audit(notice: Notice, result: NotifyResult) -> list[AuditEvent]:
        now = datetime.now(timezone.utc)
        base = {"notice": notice.event, "kind": notice.change.kind}
        events = [AuditEvent(id=f"{notice.key}/{name}:notify.sent", at=now, run_id=notice.run_id,
                             step_id=notice.step_id, event="notify.sent",
                             data={**base, "channel": name, "recipients": notice.approvers})
                  for name in result.sent]
        events += [AuditEvent(id=f"{notice.key}/{name}:notify.failed", at=now, run_id=notice.run_id,
                              step_id=notice.step_id, event="notify.failed",
                              data={**base, "channel": name, "error": problem})
                   for name, problem in result.failed.items()]
        return events
