"""`apply_written_ahead` records the tool's own answer to a write as the after-state when the
answer states the wanted state, and reads the tool otherwise (handrail/actions/base.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from activities.settle import apply_written_ahead
from handrail.gate.ledger import Ledger
from handrail.gate.models import Change, ChangeRecord, Mode

pytestmark = pytest.mark.unit


class Toggle:
    """One switch in memory; `answer` is what the write says back."""

    kind = "test.toggle"

    def __init__(self, answer):
        self.on, self.reads, self.answer = False, 0, answer

    async def read(self, tools, change):
        self.reads += 1
        return {"on": self.on}

    def wanted(self, change, state):
        return bool(state["on"])

    async def apply(self, tools, change, key):
        self.on = True
        return self.answer

    def inverse(self, change, before):
        return Change(kind="test.untoggle", target=change.target)


def begun(ledger: Ledger) -> ChangeRecord:
    change = Change(kind="test.toggle", target="switch-1")
    return ledger.begin_change(ChangeRecord(
        change_id="run-1/s01-test.toggle", run_id="run-1", step_id="s01-test.toggle", change=change,
        before={"on": False}, inverse=Change(kind="test.untoggle", target="switch-1"), mode=Mode.GUARDED,
        requested_by="alice", approved_by=[], applied_at=datetime.now(timezone.utc)))


@pytest.mark.parametrize("answer, reads, after", [
    ({"on": True, "by": "the tool's answer"}, 0, {"on": True, "by": "the tool's answer"}),
    (None, 1, {"on": True}),                    # the write says nothing: the tool is read
    ({"on": False}, 1, {"on": True}),           # the answer contradicts the write: the tool is read
])
async def test_the_after_state_is_the_answer_when_it_states_the_change(tmp_path, answer, reads, after):
    ledger = Ledger(tmp_path / "ledger.db")
    action = Toggle(answer)
    record = await apply_written_ahead(ledger, action, None, begun(ledger), "run-1/s01-test.toggle", retried=False)
    assert (record.status, record.after, action.reads) == ("applied", after, reads)
    assert ledger.verified_change("run-1/s01-test.toggle").after == after
    ledger.close()
