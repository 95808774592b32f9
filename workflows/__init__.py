"""Every runbook and engine workflow the worker registers."""

from workflows.egress_block import EgressBlock
from workflows.exfiltration import ExfiltrationFollowUp, ExfiltrationResponse, PollDlp
from workflows.phishing import PhishingResponse, PollMailbox
from workflows.rollback import RollbackRun

WORKFLOWS = [PhishingResponse, PollMailbox, EgressBlock, RollbackRun, ExfiltrationResponse, ExfiltrationFollowUp, PollDlp]
