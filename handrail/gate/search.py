"""The search attributes every Handrail run carries in Temporal's visibility store.

They make the Web UI and `temporal workflow list` an approval console
(`HandrailState="awaiting_approval"`), so the stack registers them before the worker
starts and the workflows set them as the run moves. All are Keyword attributes.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

STATE_KEY = SearchAttributeKey.for_keyword("HandrailState")
RUNBOOK_KEY = SearchAttributeKey.for_keyword("HandrailRunbook")
AWAITING_KEY = SearchAttributeKey.for_keyword("HandrailAwaiting")
REQUESTER_KEY = SearchAttributeKey.for_keyword("HandrailRequestedBy")
SEARCH_ATTRIBUTES = {key.name: "Keyword" for key in (STATE_KEY, RUNBOOK_KEY, AWAITING_KEY, REQUESTER_KEY)}
