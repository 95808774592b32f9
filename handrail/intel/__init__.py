"""Threat-intel sync, the pure core: normalise feeds, find consensus, apply guardrails.

Activities call these functions; workflows only ever see the hashes and counts they
return (see :mod:`handrail.intel.pipeline`). Nothing here touches the network.
"""
