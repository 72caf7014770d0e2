"""Pictures of incident counts for reviewers, drawn on the server as inline SVG.

The functions here only lay out counts they are given: they never query, and the counts they get come from clear
columns alone. A chart is a set of shapes (bars, rules, labels) in a fixed coordinate space that the page scales
to its width, and the numbers it draws as table rows, which the page shows beside it for screen readers and for
people who would rather read. No script, font or style sheet is fetched, and colours are SVG presentation
attributes, which the Content-Security-Policy allows (an inline `style` attribute it would refuse).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from babel.dates import format_skeleton
from babel.lists import format_list
from flask import render_template
from flask_babel import format_decimal, get_locale
from flask_babel import gettext as _
from markupsafe import Markup

# The coordinate space: as wide as a phone screen, so that text keeps about its nominal size there.
WIDTH = 360
FONT = 15
SMALL = 13
INK = "#1b1b1b"
MUTED = "#4a4a4a"
BAR = "#0b4f8a"  # the site's accent colour: 8:1 against white
GRID = "#c8c8c8"
# More months than this would make bars too thin to see on a phone: the latest ones are drawn, and a note says so.
MONTH_LIMIT = 36
LABEL_LENGTH = 38  # characters of a category's name drawn above its bar; the table and the bar's title hold all


@dataclass(frozen=True)
class Row:
    """One number of a chart, as its table shows it."""

    label: str
    count: int

    @property
    def shown(self) -> str:
        return number(self.count)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str  # shown when pointing at the bar
    colour: str = BAR


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"
    size: int = FONT
    colour: str = INK


@dataclass(frozen=True)
class Rule:
    x1: float
    y1: float
    x2: float
    y2: float
    colour: str = GRID


@dataclass(frozen=True)
class Chart:
    """A chart ready to draw: `key` makes its element ids unique on the page."""

    key: str
    title: str
    description: str
    heading: str  # what the first column of its table names
    rows: tuple[Row, ...]
    height: float
    bars: tuple[Bar, ...] = ()
    labels: tuple[Label, ...] = ()
    rules: tuple[Rule, ...] = ()
    notes: tuple[str, ...] = ()
    width: int = WIDTH

    def svg(self) -> Markup:
        """The chart as an inline `<svg role="img">` element, its title and description first."""
        return Markup(render_template("review/charts/chart.svg", chart=self))  # noqa: S704 - rendered with autoescape


def number(count: int) -> str:
    return str(format_decimal(count))


def _entry(label: str, count: int) -> str:
    return _("%(label)s: %(count)s", label=label, count=number(count))


def _month(year: int, month: int, skeleton: str) -> str:
    return str(format_skeleton(skeleton, date(year, month, 1), locale=get_locale() or "en"))


def _months_between(first: str, last: str) -> Iterator[tuple[int, int]]:
    year, month = int(first[:4]), int(first[5:7])
    end = (int(last[:4]), int(last[5:7]))
    while (year, month) <= end:
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _scale(most: int) -> tuple[int, int]:
    """A round top for the value axis at or above `most`, and the step between its gridlines (four at most)."""
    most = max(most, 1)
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if step * 4 >= most:
                return step * math.ceil(most / step), step
        magnitude *= 10


def _shorten(text: str) -> str:
    return text if len(text) <= LABEL_LENGTH else text[:LABEL_LENGTH - 1].rstrip() + "…"


def months_chart(counts: Mapping[str, int], *, undated: int = 0, limit: int = MONTH_LIMIT) -> Chart | None:
    """Incidents per month, as columns from the first month with one to the last, months without any included.

    `counts` maps a month (YYYY-MM) to its incidents; `undated` is how many have no known month (noted, not drawn).
    Beyond `limit` months only the latest are drawn, and a note says how many incidents fall before them. None when
    no incident has a known month.
    """
    dated = {m: c for m, c in counts.items() if c > 0}
    if not dated:
        return None
    months = list(_months_between(min(dated), max(dated)))
    notes: list[str] = []
    if len(months) > limit:
        months = months[-limit:]
        first = f"{months[0][0]:04d}-{months[0][1]:02d}"
        earlier = sum(c for m, c in dated.items() if m < first)
        notes.append(_("Only the latest %(limit)s months are drawn. Incidents of earlier months: %(count)s.",
                       limit=limit, count=number(earlier)))
    if undated:
        notes.append(_("Incidents without a known month, not drawn: %(count)s.", count=number(undated)))
    rows = tuple(Row(_month(y, m, "yMMMM"), dated.get(f"{y:04d}-{m:02d}", 0)) for y, m in months)

    most = max(r.count for r in rows)
    top, step = _scale(most)
    left = max(28, 10 + 8 * len(number(top)))
    right, head, plot_height = 16, 22, 170  # room on the right for a last month's name or year
    bottom = head + plot_height
    slot = (WIDTH - left - right) / len(rows)
    bar_width = min(max(1.0, slot * 0.7), 40.0)

    rules = [Rule(left, bottom - plot_height * v / top, WIDTH - right, bottom - plot_height * v / top,
                  INK if v == 0 else GRID) for v in range(0, top + 1, step)]
    labels = [Label(left - 6, bottom - plot_height * v / top + 4, number(v), "end", SMALL, MUTED)
              for v in range(0, top + 1, step)]
    bars = []
    # Month names under every k-th column, and the year under each January and the first column.
    every = 1 if len(rows) <= 6 else 2 if len(rows) <= 12 else 3 if len(rows) <= 24 else 6
    for i, ((year, month), row) in enumerate(zip(months, rows, strict=True)):
        centre = left + slot * (i + 0.5)
        height = plot_height * row.count / top
        bars.append(Bar(round(centre - bar_width / 2, 2), round(bottom - height, 2), round(bar_width, 2),
                        round(height, 2), _entry(row.label, row.count)))
        if slot >= 26 and row.count:
            labels.append(Label(round(centre, 2), round(bottom - height - 5, 2), number(row.count), "middle",
                                SMALL))
        if (month - 1) % every == 0:
            labels.append(Label(round(centre, 2), bottom + 17, _month(year, month, "MMM"), "middle", SMALL))
        to_january = (13 - month) % 12  # columns from this one to the next January
        crowded = month != 1 and to_january < len(rows) and to_january * slot < 40
        if month == 1 or (i == 0 and not crowded):
            labels.append(Label(round(centre, 2), bottom + 34, str(year), "middle", SMALL, MUTED))

    peak = next(r for r in rows if r.count == most)
    description = _("Incidents with a known month: %(total)s, from %(first)s to %(last)s. The highest monthly "
                    "count: %(most)s, in %(month)s.", total=number(sum(r.count for r in rows)),
                    first=rows[0].label, last=rows[-1].label, most=number(most), month=peak.label)
    return Chart(key="months", title=_("Incidents per month"), description=description, heading=_("Month"),
                 rows=rows, height=bottom + 42, bars=tuple(bars), labels=tuple(labels), rules=tuple(rules),
                 notes=tuple(notes))


def categories_chart(key: str, rows: Sequence[Row], *, title: str, heading: str) -> Chart:
    """Incidents per category (a region, a type), as horizontal bars in the order given, each named above it,
    so that long names in any language fit a phone's width."""
    row_height, bar_height = 46, 16
    widest = max((len(number(r.count)) for r in rows), default=1)
    room = WIDTH - 4 - (10 + 8 * widest)
    most = max((r.count for r in rows), default=0) or 1
    bars, labels = [], []
    for i, row in enumerate(rows):
        top = i * row_height
        length = round(room * row.count / most, 2)
        labels.append(Label(2, top + 16, _shorten(row.label)))
        bars.append(Bar(2, top + 22, length, bar_height, _entry(row.label, row.count)))
        labels.append(Label(round(2 + length + 6, 2), top + 35, number(row.count), "start", SMALL))
    description = _("%(title)s. %(counts)s.", title=title,
                    counts=format_list([_entry(r.label, r.count) for r in rows], locale=get_locale() or "en"))
    return Chart(key=key, title=title, description=description, heading=heading, rows=tuple(rows),
                 height=max(1, len(rows)) * row_height + 2, bars=tuple(bars), labels=tuple(labels),
                 rules=(Rule(2, 18, 2, max(1, len(rows)) * row_height - 4, INK),))
