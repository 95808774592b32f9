"""A run whose coroutine is torn down (evicted, then garbage-collected) does nothing.

Python throws GeneratorExit into a collected coroutine synchronously, on whatever thread
collects it, possibly while another run's workflow task is executing there. The runbook's
exit must then neither compensate nor touch any workflow API: on another run's loop its undo
would become that run's commands (a rogue-device run's revert was seen in an exfiltration
run's history). These call the exit the way the interpreter does, with no workflow at all:
any workflow call would raise.
"""

from __future__ import annotations

import asyncio

import pytest

from handrail.gate.models import ChangeRecord
from workflows.gate import Runbook

pytestmark = pytest.mark.unit


def _entered(loop) -> Runbook:
    rb = object.__new__(Runbook)  # no workflow here: __init__ reads workflow.info()
    rb._loop = loop
    rb._saga = [(object(), ChangeRecord.model_construct(change_id="run-a/s01"))]  # an applied change to undo
    rb._uncertain = []
    return rb


def test_generator_exit_is_a_teardown_not_a_failure():
    rb = _entered(asyncio.new_event_loop())
    exit_ = rb.__aexit__(GeneratorExit, GeneratorExit(), None)
    with pytest.raises(StopIteration) as done:  # it returns at once, awaiting nothing
        exit_.send(None)
    assert done.value.value is False  # the GeneratorExit goes on: nothing is undone


async def test_an_exit_on_another_runs_loop_does_nothing():
    rb = _entered(asyncio.new_event_loop())  # entered on its own loop, exited on this one
    assert await rb.__aexit__(asyncio.CancelledError, asyncio.CancelledError(), None) is False


async def test_an_exit_on_its_own_loop_is_a_real_exit():
    rb = _entered(asyncio.get_running_loop())
    assert not rb._torn_down(None) and not rb._torn_down(asyncio.CancelledError())
    assert rb._torn_down(GeneratorExit())


def test_an_exit_with_no_loop_at_all_is_a_teardown():
    rb = _entered(asyncio.new_event_loop())
    assert rb._torn_down(asyncio.CancelledError())
