"""Server-side SVG charts for the status board: no JavaScript, accessible (<title>, <desc>), printable.

Printed pages lose colours (black-and-white printers, the print stylesheet): bars are therefore told apart by
patterns as well as colours, carry their figures as text, and every chart has a legend in words."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

from .formatting import number_fr

INK = "#161616"
AXIS = "#3a3a3a"
GRID = "#dddddd"
BLUE = "#000091"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"

_WEEKDAYS = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")


def date_short(day: date) -> str:
    """« 04/05 »: a day of the current operation, on an axis."""
    return f"{day.day:02d}/{day.month:02d}"


def date_long(day: date) -> str:
    """« lun. 04/05/2020 »: a day in a tooltip or a description."""
    return f"{_WEEKDAYS[day.weekday()]} {day.day:02d}/{day.month:02d}/{day.year}"


def _id(prefix: str, *parts: object) -> str:
    """A stable element id, so that two charts on one page never share their <title> ids."""
    digest = hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{prefix}-{digest}"


def _nice_ceiling(value: int) -> int:
    """The top of a y axis cut in 4 equal whole steps of 1, 2, 2.5, 3, 4 or 5 × 10ⁿ, at or above ``value``:
    every grid line then carries a round number (7 → 8: 0, 2, 4, 6, 8)."""
    if value <= 4:
        return 4
    wanted = value / 4
    magnitude = 10 ** math.floor(math.log10(wanted))
    for step in (1, 2, 2.5, 3, 4, 5, 10):
        size = step * magnitude
        if size >= wanted and float(size).is_integer():
            return int(size) * 4
    return int(10 * magnitude) * 4


def _text(x: float, y: float, content: str, *, size: int = 11, anchor: str = "start", **attrs: str) -> str:
    extra = "".join(f' {name.replace("_", "-")}="{escape(value)}"' for name, value in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{INK}"{extra}>'
        f"{escape(content)}</text>"
    )


def bar_chart(
    series: Sequence[tuple[date, int]],
    *,
    title: str,
    width: int = 720,
    height: int = 240,
    desc: str | None = None,
    unit: tuple[str, str] = ("équipement remis", "équipements remis"),
) -> Markup:
    """Vertical bars, one per day, with French dates on the x axis and the count above each bar."""
    ident = _id("chart", title, tuple(series))
    left, right, top, bottom = 44, 12, 18, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [count for _day, count in series]
    total = sum(values)
    peak = max(values, default=0)
    ceiling = _nice_ceiling(peak)
    if desc is None:
        if series:
            first, last = series[0][0], series[-1][0]
            desc = f"Du {date_long(first)} au {date_long(last)} : {number_fr(total)} " + (
                unit[0] if total == 1 else unit[1]
            )
            if peak:
                best = next(day for day, count in series if count == peak)
                desc += f", au plus {number_fr(peak)} par jour (le {date_long(best)})."
            else:
                desc += "."
        else:
            desc = "Aucune donnée."
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-bars" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        f'font-family="{escape(FONT)}">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
    ]
    # horizontal grid and y labels: 0, ¼, ½, ¾ and the top
    for i in range(5):
        value = ceiling // 4 * i
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{GRID}" '
            'stroke-width="1" aria-hidden="true"/>'
        )
        parts.append(_text(left - 6, y + 4, number_fr(value), size=11, anchor="end", aria_hidden="true"))
    count = max(1, len(series))
    slot = plot_w / count
    bar = max(2.0, slot * 0.7)
    label_every = max(1, math.ceil(count / 10))
    for index, (day, value) in enumerate(series):
        x = left + index * slot + (slot - bar) / 2
        h = plot_h * value / ceiling if ceiling else 0
        y = top + plot_h - h
        tooltip = f"{date_long(day)} : {number_fr(value)} " + (unit[0] if value == 1 else unit[1])
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{BLUE}" '
            f'stroke="{INK}" stroke-width="{0.5 if value else 0}"><title>{escape(tooltip)}</title></rect>'
        )
        if value and slot >= 14:
            parts.append(_text(x + bar / 2, y - 3, number_fr(value), size=10, anchor="middle"))
        if index % label_every == 0 or index == count - 1:
            cx = x + bar / 2
            parts.append(
                f'<line x1="{cx:.1f}" y1="{top + plot_h}" x2="{cx:.1f}" y2="{top + plot_h + 4}" '
                f'stroke="{AXIS}" aria-hidden="true"/>'
            )
            parts.append(_text(cx, top + plot_h + 17, date_short(day), size=11, anchor="middle"))
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{AXIS}" stroke-width="1.5"/>'
    )
    if series:
        parts.append(
            _text(
                left + plot_w / 2,
                height - 6,
                f"jour (du {date_short(series[0][0])} au {date_short(series[-1][0])}/{series[-1][0].year})",
                size=11,
                anchor="middle",
                fill="#595959",
            )
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 — every text and attribute value above is escaped


# ---------------------------------------------------------------- stacked horizontal bars

# Colour and pattern of each device column: the pattern keeps them apart on a black-and-white print.
SEGMENT_STYLES: dict[str, tuple[str, str, str]] = {
    # column: (background, pattern drawing over it, text colour on it)
    "assigned": ("#e3e3fd", "dots", INK),
    "on_slips": ("#c3b5e6", "diagonal", INK),
    "shipped": ("#8fd3e6", "antidiagonal", INK),
    "received": ("#6a9bd8", "horizontal", INK),
    "handed_over": (BLUE, "none", "#ffffff"),
    "missing": ("#f4a3a5", "cross", INK),
    "damaged": ("#f7c9a3", "vertical", INK),
}


def _pattern(ident: str, background: str, kind: str) -> str:
    """An 8×8 tile: the colour, then black strokes (or none for the solid dark fill)."""
    strokes = {
        "dots": '<circle cx="4" cy="4" r="1.1" fill="#000"/>',
        "diagonal": '<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="#000" stroke-width="1"/>',
        "antidiagonal": '<path d="M-2,6 l4,4 M0,0 l8,8 M6,-2 l4,4" stroke="#000" stroke-width="1"/>',
        "horizontal": '<path d="M0,4 h8" stroke="#000" stroke-width="1.2"/>',
        "vertical": '<path d="M4,0 v8" stroke="#000" stroke-width="1.2"/>',
        "cross": '<path d="M0,0 l8,8 M8,0 l-8,8" stroke="#000" stroke-width="0.9"/>',
        "none": "",
    }[kind]
    return (
        f'<pattern id="{ident}" patternUnits="userSpaceOnUse" width="8" height="8">'
        f'<rect width="8" height="8" fill="{background}"/>{strokes}</pattern>'
    )


def stacked_bars(
    rows: Sequence[tuple[str, dict[str, int], int]],
    *,
    segments: Sequence[tuple[str, str]],
    title: str,
    width: int = 900,
    row_height: int = 26,
    label_width: int = 200,
    desc: str | None = None,
    needs_label: str = "besoins",
) -> Markup:
    """One horizontal bar per row (label, counts per segment, needs), its segments stacked in the order of
    ``segments`` [(key, French label)]; each bar ends with its total and the row's needs; a legend follows.

    Bars share one scale, the largest total: needs are written, not drawn, because early in the operation
    they dwarf the devices and would flatten every bar."""
    ident = _id("stack", title, tuple((label, tuple(sorted(c.items())), n) for label, c, n in rows))
    right = 170
    top = 8
    plot_w = width - label_width - right
    scale_max = max([sum(counts.values()) for _l, counts, _n in rows] + [1])
    legend_cols = 4
    legend_rows = math.ceil(len(segments) / legend_cols)
    legend_top = top + len(rows) * row_height + 14
    height = legend_top + legend_rows * 20 + 6
    if desc is None:
        desc = (
            "Pour chaque ligne, les équipements répartis par étape ("
            + ", ".join(label.lower() for _key, label in segments)
            + f"), suivis de leur total et des besoins. {len(rows)} ligne(s)."
        )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-stacked" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="{ident}-t {ident}-d" '
        f'font-family="{escape(FONT)}">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
        "<defs>",
        *(
            _pattern(f"{ident}-{key}", *SEGMENT_STYLES.get(key, ("#cccccc", "none", INK))[:2])
            for key, _label in segments
        ),
        "</defs>",
    ]
    for index, (label, counts, needs) in enumerate(rows):
        y = top + index * row_height
        bar_y, bar_h = y + 4, row_height - 8
        parts.append(_text(label_width - 8, y + row_height / 2 + 4, _clip(label, 27), size=12, anchor="end"))
        x = float(label_width)
        total = 0
        for key, seg_label in segments:
            value = counts.get(key, 0)
            if not value:
                continue
            total += value
            w = plot_w * value / scale_max
            text_colour = SEGMENT_STYLES.get(key, ("", "", INK))[2]
            parts.append(
                f'<rect x="{x:.1f}" y="{bar_y}" width="{w:.1f}" height="{bar_h}" fill="url(#{ident}-{key})" '
                f'stroke="#000" stroke-width="0.6"><title>{escape(label)} — {escape(seg_label)} : '
                f"{number_fr(value)}</title></rect>"
            )
            figure = number_fr(value)
            if w >= 8 * len(figure) + 6:
                halo = "#ffffff" if text_colour == INK else "#000000"
                parts.append(
                    f'<text x="{x + w / 2:.1f}" y="{bar_y + bar_h / 2 + 4:.1f}" font-size="11" '
                    f'font-weight="700" text-anchor="middle" fill="{text_colour}" stroke="{halo}" '
                    f'stroke-width="2.5" paint-order="stroke" aria-hidden="true">{figure}</text>'
                )
            x += w
        summary = (
            f"{label} — {needs_label} : {number_fr(needs)}" if needs else f"{label} — sans {needs_label}"
        )
        parts.append(
            f'<text x="{x + 5:.1f}" y="{y + row_height / 2 + 4:.1f}" font-size="11" fill="{INK}">'
            f"<title>{escape(summary)}</title>"
            f'<tspan font-weight="700">{number_fr(total)}</tspan>'
            + (f' <tspan fill="#595959">/ {number_fr(needs)} {escape(needs_label)}</tspan>' if needs else "")
            + "</text>"
        )
    # legend: swatches with the same patterns as the bars
    column_w = width / legend_cols
    for i, (key, label) in enumerate(segments):
        lx = (i % legend_cols) * column_w + 4
        ly = legend_top + (i // legend_cols) * 20
        parts.append(
            f'<rect x="{lx:.1f}" y="{ly}" width="18" height="14" fill="url(#{ident}-{key})" stroke="#000" '
            'stroke-width="0.6"/>'
        )
        parts.append(_text(lx + 24, ly + 11, label, size=12))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 — every text and attribute value above is escaped


def _clip(text: str, length: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def progress_bar(value: int, total: int, *, label: str, width: int = 160, height: int = 14) -> Markup:
    """A small gauge (value out of total) that prints: an outlined box filled in proportion."""
    share = 0.0 if total <= 0 else max(0.0, min(1.0, value / total))
    over = total > 0 and value > total
    fill = "#ce0500" if over else BLUE
    return Markup(  # noqa: S704 — the label is escaped, the rest are numbers
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gauge" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="#ffffff" stroke="#000" '
        f'stroke-width="1"/>'
        f'<rect x="1" y="1" width="{(width - 2) * share:.1f}" height="{height - 2}" fill="{fill}"/>'
        "</svg>"
    )
