"""Connecting to Temporal the same way everywhere: CLI, worker, tests, benchmarks."""

from __future__ import annotations

from temporalio.client import Client

from handrail.ops.codec import data_converter
from handrail.ops.config import Settings


class TemporalUnavailable(RuntimeError):
    pass


async def connect(settings: Settings) -> Client:
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            data_converter=data_converter(),  # encrypted when HANDRAIL_PAYLOAD_KEY is set
        )
    except RuntimeError as exc:
        raise TemporalUnavailable(
            f"Temporal is not answering at {settings.temporal_address}; start the stack with `handrail up` "
            f"({str(exc).splitlines()[0]})."
        ) from None
