"""Each runbook's pure rules and models: what its triggers are and how it decides.

One module (or package) per runbook; the workflow of the same name in `workflows/` says
what to do, this says how to judge. Nothing here does I/O.
"""
