"""EDR actions (owner: exfiltration runbook). Being written."""
