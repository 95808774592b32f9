"""Every runbook and engine workflow the worker registers."""

from workflows.egress_block import EgressBlock
from workflows.expiry import ExpireChanges
from workflows.exfiltration import ExfiltrationFollowUp, ExfiltrationResponse, PollDlp
from workflows.intel_sync import IntelApply, IntelSync
from workflows.phishing import PhishingResponse, PollMailbox
from workflows.preflight import Preflight
from workflows.privilege_guard import PollIamEvents, PrivilegeGuard
from workflows.rogue_device import PollNacDevices, RogueDevice
from workflows.rollback import RollbackRun

WORKFLOWS = [PhishingResponse, PollMailbox, EgressBlock, RollbackRun, ExfiltrationResponse, ExfiltrationFollowUp, PollDlp, PrivilegeGuard, PollIamEvents, RogueDevice, PollNacDevices, IntelSync, IntelApply]
WORKFLOWS.append(Preflight)  # read-only pre-flight check the CLI runs before starting a runbook
WORKFLOWS.append(ExpireChanges)  # a completed run's TTLs, outside the run's own lifetime
