"""The worker's checkpoint timer: sign the audit chain's head every few minutes and at shutdown.

Each checkpoint goes to two places away from the ledger: the append-only checkpoint file
under HANDRAIL_HOME and the SIEM's log (through the worker's tool client). Signing never
stops the worker: a failure is logged and the next tick tries again; a SIEM that is down
only delays the shipping of that checkpoint's copy, never the file's.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from handrail.gate.checkpoints import Checkpoint, append_checkpoint, origin_for, public_key
from handrail.gate.ledger import Ledger
from handrail.gate.policy import parse_duration
from handrail.ops.config import Settings
from handrail.ops.log import get_logger
from handrail.tools.errors import ToolError

SIEM_SOURCE = "handrail-checkpoint"


class Checkpointer:
    def __init__(self, settings: Settings, ledger: Ledger, tools: Any):
        self.settings = settings
        self.ledger = ledger
        self.tools = tools
        self.every_s = parse_duration(settings.checkpoint_every)
        self.log = get_logger(component="checkpointer")

    async def checkpoint(self) -> Checkpoint:
        """Sign, append to the file, ship to the SIEM; returns the checkpoint."""
        home = self.settings.home
        origin = await asyncio.to_thread(origin_for, home)
        checkpoint = await asyncio.to_thread(append_checkpoint, home, self.ledger, origin,
                                             datetime.now(timezone.utc))
        note = checkpoint.note(public_key(home))
        try:
            await self.tools.siem.ingest(SIEM_SOURCE, note, action="audit.checkpoint",
                                         idempotency_key=f"checkpoint-{checkpoint.signature[:43]}")
        except ToolError as exc:
            self.log.warning("checkpoint not shipped to the SIEM", error=str(exc), size=checkpoint.size)
        self.log.info("audit checkpoint signed", size=checkpoint.size, origin=checkpoint.origin)
        return checkpoint

    async def run(self, stop: asyncio.Event) -> None:
        """Every `every_s` until `stop`; the owner signs the shutdown checkpoint once its worker drained."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.every_s)
            except asyncio.TimeoutError:
                await self.checkpoint_safely()

    async def checkpoint_safely(self) -> None:
        try:
            await self.checkpoint()
        except Exception as exc:  # never crash the worker over a checkpoint
            self.log.error("audit checkpoint failed", error=str(exc))
