"""Threat-intel sync, the pure core: normalise feeds, find consensus, apply guardrails.

Activities call these functions; workflows only ever see the hashes and counts they
return (see :mod:`handrail.intel.pipeline`). Nothing here touches the network.

The sync around it: :mod:`handrail.intel.config` (``[settings.intel]``),
:mod:`handrail.intel.messages` (boundary models), :mod:`handrail.intel.planning`, :mod:`handrail.intel.state`
(what the sync applied, the age-out clock, IPS sids), ``handrail/actions/intel.py``
(batch ``set:<sha256>`` changes), ``activities/intel.py`` and ``workflows/intel_sync.py``.
"""
