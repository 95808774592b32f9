"""The phishing runbook: mail parsing (`mail`), indicator normalisation (`indicators`)
and the rules that judge which domains are malicious (`rules`)."""
