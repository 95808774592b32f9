"""The pre-flight check's reads: does the trigger exist, what does the worker's policy deny.

Read-only: it asks the tools (with the worker's credentials, which the CLI never holds)
and reads the policy; it writes nothing, not even the audit, because nothing started.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import tool_failure
from handrail.gate.ledger import Ledger
from handrail.gate.policy import PolicyError, load_policy
from handrail.gate.preflight import PreflightRequest, PreflightResult, lookup_hint, static_refusals
from handrail.ops.config import Settings
from handrail.tools.errors import NotFound, ToolError


class PreflightActivities:
    def __init__(self, settings_or_ctx: Any, tools: Any = None, ledger: Ledger | None = None):
        """Takes (settings, tools, ledger) or one worker context with those attributes."""
        if tools is None and hasattr(settings_or_ctx, "settings"):
            settings_or_ctx, tools = settings_or_ctx.settings, settings_or_ctx.tools
        self.settings: Settings = settings_or_ctx
        self.tools = tools

    @activity.defn
    async def preflight_check(self, request: PreflightRequest) -> PreflightResult:
        try:
            policy = load_policy(self.settings.policy_path)
        except PolicyError as exc:
            raise ApplicationError(str(exc), type="PolicyError", non_retryable=True) from None
        refusals = await asyncio.to_thread(static_refusals, policy, request.changes)  # loads the suffix list once
        try:
            if request.dlp_alert and not await self._exists(self.tools.dlp.get_alert, request.dlp_alert):
                refusals.append(f"there is no DLP alert {request.dlp_alert} ({lookup_hint('dlp')})")
            if request.iam_event and not await self._exists(self.tools.iam.get_event, request.iam_event):
                refusals.append(f"IAM has no event {request.iam_event} ({lookup_hint('iam')})")
            if request.nac_mac and not await self._exists(self.tools.nac.get_device, request.nac_mac):
                refusals.append(f"NAC has never seen a device with MAC {request.nac_mac} ({lookup_hint('nac')})")
        except ToolError as exc:
            raise tool_failure(exc, "the pre-flight look-up failed") from None
        return PreflightResult(refusals=refusals)

    @staticmethod
    async def _exists(get, key: str) -> bool:
        try:
            await get(key)
        except NotFound:
            return False
        except ValueError:  # a record the tool returns malformed still exists; the run explains it
            return True
        return True

    def all(self) -> list:
        return [self.preflight_check]
