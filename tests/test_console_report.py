"""The baseline page reads: hour ticks within a day, bars for counts, whole-number ticks, a summary first."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from handrail.gate.ledger import Ledger
from handrail.trust.baseline import compute_baseline
from handrail.trust.report import integer_ticks, render, time_ticks
from handrail.trust.synth import SyntheticLedger

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def test_ticks_are_whole_numbers_and_hours_within_a_day():
    assert integer_ticks(3) == [0, 1, 2, 3] and integer_ticks(23) == [0, 5, 10, 15, 20]
    labels = [label for _, label in time_ticks(T0, 6, timedelta(hours=1))]
    assert labels[0] == "Nov 30 06:00" and labels[1:] == ["07:00", "08:00", "09:00", "10:00", "11:00", "12:00"]
    assert len(set(labels)) == len(labels)
    days = [label for _, label in time_ticks(T0, 60, timedelta(days=1))]
    assert days[0] == "Nov 30" and len(days) <= 9


def test_a_six_hour_page_has_bars_hour_labels_and_a_summary(tmp_path):
    ledger = Ledger(tmp_path / "l.db")
    with SyntheticLedger(ledger) as syn:
        for h, n in ((0, 2), (2, 5), (5, 1)):
            for k in range(n):
                syn.change("dns.sinkhole", T0 + timedelta(hours=h, minutes=k), run_id=f"r{h}", step_id=f"s{k}")
        syn.change("firewall.egress_block", T0 + timedelta(hours=1), run_id="f", step_id="s")
    page = render(compute_baseline(ledger, T0 + timedelta(hours=6)), {"dns.sinkhole": "logged"})
    assert page.index("class='summary'") < page.index("<svg")
    assert "<a href='#dns.sinkhole'>dns.sinkhole</a>" in page and "<h2 id='dns.sinkhole'>" in page
    assert page.count('<rect class="bar"') == 4 and "<polyline" not in page
    first_chart = page.split("<svg")[1].split("</svg>")[0]
    x_labels = re.findall(r'text-anchor="middle">([^<]+)</text>', first_chart)
    assert x_labels[0].startswith("Nov 30 ") and len(set(x_labels)) == len(x_labels)
    assert all(re.fullmatch(r"\d\d:00", label) for label in x_labels[1:] if not label.startswith("Dec"))
    y_labels = re.findall(r'<text x="42" y="[^"]+" text-anchor="end">([^<]+)</text>', first_chart)  # the y axis
    assert y_labels and all(label.isdigit() for label in y_labels)
