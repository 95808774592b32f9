"""Temporal workflow code only, deterministic: the gate (`workflows.gate`) and one module per runbook.

Deliberately empty. The sandbox imports this package for every run, so anything imported
here is paid per run by every workflow; each workflow module imports only what it needs.
The list of workflows the worker registers is `worker.WORKFLOWS`.
"""
