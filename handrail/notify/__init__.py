"""Telling approvers that a step waits for them (issue 18, item 9).

Modelled on Teleport's access-request plugins: a notice says what is asked, why, until
when, and the exact `handrail approve|deny` commands; it links, it never approves. The
workflow builds the notice (`message`), an activity sends it over the channels the
policy's `[settings.notify]` names (`settings`, `channels`); a failing channel is
retried a few times, audited as `notify.failed`, and never holds up the run.
"""
