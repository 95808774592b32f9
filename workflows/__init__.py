"""Every runbook and engine workflow the worker registers."""

from workflows.egress_block import EgressBlock
from workflows.rollback import RollbackRun

WORKFLOWS = [EgressBlock, RollbackRun]
