"""The step gate's domain: the models that cross the workflow boundary, the policy, the
guardrails, the approval judge, the ledger and the timeline rebuilt from it.

Every trust decision Handrail makes is made by code in this package.
"""
