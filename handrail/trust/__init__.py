"""Earned trust: the baseline read from the ledger, trust advice, reviews and the report."""
