"""The baseline as one self-contained HTML page a person can open in a browser.

One inline SVG chart per action kind — its change rate over time with the guardrail
thresholds (derived and static) drawn across it — and a table of its figures. No scripts,
fonts or style sheets from anywhere else: the file can be mailed or archived as is.
"""

from __future__ import annotations

from datetime import timedelta
from html import escape

from handrail.trust.baseline import Baseline, KindBaseline

W, H = 880, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 28
MAX_POINTS = 2400  # more hours than this are drawn as days

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:940px;color:#1b1f24}
h1{font-size:22px;margin-bottom:2px}h2{font-size:17px;margin:28px 0 4px}
.meta{color:#57606a;font-size:13px}
table{border-collapse:collapse;margin:8px 0 4px;font-size:13px}
td,th{border-bottom:1px solid #d0d7de;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#57606a;font-weight:600}
svg{background:#fafbfc;border:1px solid #d0d7de;border-radius:4px}
.rate{fill:none;stroke:#0969da;stroke-width:1.2}.bar{fill:#0969da}
.summary td:nth-child(n+3){text-align:right}
.threshold{stroke:#cf222e;stroke-width:1.5;stroke-dasharray:6 4}
.static{stroke:#9a6700;stroke-width:1.2;stroke-dasharray:2 3}
.p99{stroke:#8250df;stroke-width:1;stroke-dasharray:1 3}
.axis{stroke:#8c959f;stroke-width:1}.grid{stroke:#eaeef2;stroke-width:1}
text{font-size:11px;fill:#57606a}.label{font-size:11px}
.t-threshold{fill:#cf222e}.t-static{fill:#9a6700}.t-p99{fill:#8250df}
"""


class Line:
    """A horizontal line on a chart: a threshold in force, a static option, a percentile."""

    def __init__(self, value: float, label: str, css: str = "threshold"):
        self.value, self.label, self.css = float(value), label, css


def _fmt(value: float) -> str:
    return f"{round(value, 2):g}"


def chart(fig: KindBaseline, lines: list[Line]) -> str:
    """An inline SVG line chart of the kind's rate with horizontal lines for its thresholds."""
    series, unit, step = fig.series, "hour", timedelta(hours=1)
    if len(series) > MAX_POINTS:
        days = [sum(series[i:i + 24]) for i in range(0, len(series), 24)]
        series, unit, step = days, "day", timedelta(days=1)
        lines = [line for line in lines if line.css == "p99"]  # hourly limits do not fit a daily scale
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    peak = max([1.0, *series])
    # A limit far above anything that happened would flatten the rate into the axis: such a
    # line is pinned to the top edge and labelled as above the chart instead.
    top = max([peak, *(line.value for line in lines if line.value <= 3 * peak)]) * 1.1
    n = max(1, len(series))  # one bar per bucket: counts per hour (or day) are bars, not ramps

    def x(i: float) -> float:
        return LEFT + plot_w * i / n

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
              f'role="img" aria-label="{escape(fig.kind)} changes per {unit}">')]
    for v in integer_ticks(top / 1.1):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    if fig.window_start is not None and series:
        for i, label in time_ticks(fig.window_start, len(series), step):
            parts.append(f'<line class="grid" x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
            anchor = "end" if i >= len(series) else "middle"  # the last tick sits on the right edge
            parts.append(f'<text x="{x(i):.1f}" y="{H - 8}" text-anchor="{anchor}">{label}</text>')
        width = max(plot_w / n - (1 if plot_w / n > 3 else 0), 0.6)
        for i, v in enumerate(series):
            if v:
                parts.append(f'<rect class="bar" x="{x(i):.1f}" y="{y(v):.1f}" width="{width:.2f}" '
                             f'height="{y(0) - y(v):.1f}"><title>{fig.window_start + i * step:%Y-%m-%d %H:%M}: '
                             f'{v:g} per {unit}</title></rect>')
    for line in lines:
        above = line.value > top
        yy = TOP if above else y(line.value)
        label = line.label + (" — above the chart" if above else "")
        parts.append(f'<line class="{line.css}" x1="{LEFT}" x2="{W - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}">'
                     f"<title>{escape(label)}</title></line>")
        left = line.css == "p99"  # percentiles labelled on the left, limits on the right
        parts.append(f'<text class="label t-{line.css}" x="{LEFT + 4 if left else W - RIGHT - 4}" '
                     f'y="{yy + (12 if above else -4):.1f}" text-anchor="{"start" if left else "end"}">'
                     f"{escape(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def integer_ticks(peak: float, most: int = 5) -> list[int]:
    """Whole-number ticks (counts are whole) in steps of 1, 2 or 5 times a power of ten."""
    power = 1
    while True:
        for step in (power, 2 * power, 5 * power):
            if peak / step <= most:
                return list(range(0, max(int(peak), 1) + 1, step))
        power *= 10


def time_ticks(start, buckets: int, step: timedelta, most: int = 8) -> list[tuple[int, str]]:
    """Tick positions and labels: hours within a day (with the date where the day changes), days beyond."""
    hourly = step == timedelta(hours=1)
    choices = (1, 2, 3, 6, 12, 24, 48, 168) if hourly else (1, 2, 7, 14, 30, 90)
    every = next((c for c in choices if buckets / c <= most), choices[-1])
    ticks, last_day = [], None
    for i in range(0, buckets + 1, every):
        when = start + i * step
        if hourly and every < 24:
            label = f"{when:%H:%M}" if when.date() == last_day else f"{when:%b %d %H:%M}"
        else:
            label = f"{when:%b %d}"
        last_day = when.date()
        ticks.append((i, label))
    return ticks


def summary_table(baseline: Baseline, modes: dict[str, str]) -> str:
    """Every kind on one screen, linking to its section."""
    rows = ["<table class='summary'><tr><th>kind</th><th>mode</th><th>changes</th><th>max/hour</th>"
            "<th>max/day</th><th>approved/denied/timeout</th><th>held/denied by guardrails</th>"
            "<th>rolled back</th><th>expired</th><th>overrides</th></tr>"]
    for fig in baseline.kinds:
        a, g = fig.approvals, fig.guardrails
        rows.append(f"<tr><td><a href='#{escape(fig.kind)}'>{escape(fig.kind)}</a></td>"
                    f"<td>{escape(modes.get(fig.kind, ''))}</td><td>{fig.changes}</td><td>{_fmt(fig.hourly.max)}</td>"
                    f"<td>{_fmt(fig.daily.max)}</td><td>{a.approved}/{a.denied}/{a.timeouts}</td>"
                    f"<td>{g.held}/{g.denied}</td><td>{fig.rollbacks}</td><td>{fig.expiries}</td>"
                    f"<td>{fig.overrides}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _stats_row(name: str, stats) -> str:
    return (f"<tr><th>{name}</th><td>{_fmt(stats.mean)}</td><td>{_fmt(stats.p95)}</td>"
            f"<td>{_fmt(stats.p99)}</td><td>{_fmt(stats.max)}</td><td>{stats.observations}</td></tr>")


def _kind_section(fig: KindBaseline, mode: str | None, lines: list[Line], notes: list[str]) -> str:
    a, g = fig.approvals, fig.guardrails
    window = (f"{fig.window_start:%Y-%m-%d %H:%M} – {fig.window_end:%Y-%m-%d %H:%M} UTC "
              f"({fig.hours} hours, {fig.days} days)") if fig.window_start else "no changes in the period"
    by_guardrail = ", ".join(
        f"{escape(name)}: " + ", ".join(f"{n} {escape(o)}" for o, n in sorted(outcomes.items()))
        for name, outcomes in sorted(g.by_guardrail.items())
    ) or "none"
    rows = [
        f"<h2 id='{escape(fig.kind)}'>{escape(fig.kind)}"
        + (f" <span class='meta'>mode {escape(mode)}</span>" if mode else "") + "</h2>",
        f"<div class='meta'>{window}</div>",
        chart(fig, lines),
        "".join(f"<div class='meta'>{escape(note)}</div>" for note in notes),
        "<table><tr><th></th><th>mean</th><th>p95</th><th>p99</th><th>max</th><th>observations</th></tr>",
        _stats_row("changes per hour", fig.hourly),
        _stats_row("changes per day", fig.daily),
        _stats_row("changes per run", fig.per_run),
        _stats_row("approval latency (s)", a.latency_s),
        "</table><table>",
        f"<tr><th>changes</th><td>{fig.changes} ({fig.automated} automated; "
        + ", ".join(f"{escape(m)} {n}" for m, n in fig.by_mode.items()) + ")</td></tr>",
        (f"<tr><th>approvals</th><td>{a.requested} asked: {a.approved} approved, {a.denied} denied, "
         f"{a.timeouts} timed out, {a.escalated} escalated</td></tr>"),
        (f"<tr><th>guardrails</th><td>{g.evaluated} evaluated: {g.held} held, {g.denied} denied "
         f"({by_guardrail})</td></tr>"),
        (f"<tr><th>undone</th><td>{fig.rollbacks} rolled back, {fig.expiries} expired (TTL), "
         f"{fig.compensations} compensated</td></tr>"),
        f"<tr><th>overrides</th><td>{fig.overrides} automated change(s) rolled back or reversed by a person</td></tr>",
        "</table>",
    ]
    return "\n".join(rows)


def render(baseline: Baseline, modes: dict[str, str] | None = None,
           lines: dict[str, list[Line]] | None = None, notes: dict[str, list[str]] | None = None,
           title: str = "Handrail baseline") -> str:
    """The whole page. `lines` per kind are drawn on its chart; `notes` print under it."""
    modes, lines, notes = modes or {}, lines or {}, notes or {}
    since = f"since {baseline.since:%Y-%m-%d %H:%M} UTC" if baseline.since else "all history"
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        (f"<div class='meta'>Generated {baseline.generated_at:%Y-%m-%d %H:%M} UTC from the audit ledger, {since}. "
         "Rates count every recorded change in UTC hours and days, empty ones as zero; percentiles are "
         "nearest-rank.</div>"),
    ]
    if not baseline.kinds:
        body.append("<p>The ledger has no changes in this period.</p>")
    else:
        body.append(summary_table(baseline, modes))
    for fig in baseline.kinds:
        body.append(_kind_section(fig, modes.get(fig.kind), lines.get(fig.kind, []), notes.get(fig.kind, [])))
    body.append("</body></html>\n")
    return "\n".join(body)
