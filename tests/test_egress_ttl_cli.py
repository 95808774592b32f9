"""`handrail run egress-block --ttl`: a TTL of zero is refused, never read as "no TTL" (a block
that stays for ever), before anything reaches Temporal."""

from __future__ import annotations

import asyncio

import pytest

from starter.ops import start_egress_block
from starter.output import USAGE, CliError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("ttl", ["0s", "0", "0m", ""])
def test_a_zero_or_empty_ttl_is_a_usage_error(ttl):
    with pytest.raises(CliError) as refused:  # client None: it must refuse before using it
        asyncio.run(start_egress_block(None, None, "203.0.113.7", "C2 beacon", "alice", ttl))
    assert refused.value.code == USAGE
    assert "--ttl" in str(refused.value)
