"""The status board's one-page summary for a prefect's meeting (A4 portrait, always exactly one page).

Aggregates only: territories, QPVs, counts and amounts — nothing personal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from logistique.formatting import datetime_fr, euros, number_fr, percent_fr
from logistique.pdf.drawing import (
    BLACK,
    BLUE,
    BLUE_LIGHT,
    BOLD,
    GREY,
    GREY_LIGHT,
    GREY_LINE,
    MONO,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    REGULAR,
    fit,
    label_caps,
    new_canvas,
    pdf_text,
)

MARGIN = 15 * mm
LEFT, RIGHT = MARGIN, PAGE_WIDTH - MARGIN
TOP = PAGE_HEIGHT - MARGIN
FOOTER_TOP = 16 * mm
ROW = 4.6 * mm
HEAD = 6 * mm
MAX_ROWS = 25

COUNT_COLUMNS = ("assigned", "on_slips", "shipped", "received", "handed_over", "missing", "damaged")

# (title, width, align) — 180 mm in all
TABLE = (
    ("Code", 17.5 * mm, "left"),
    ("Nom", 35.5 * mm, "left"),
    ("Besoins", 13 * mm, "right"),
    ("Attrib.", 12 * mm, "right"),
    ("Sur bord.", 12 * mm, "right"),
    ("Expédiés", 12 * mm, "right"),
    ("Reçus", 11 * mm, "right"),
    ("Remis", 11 * mm, "right"),
    ("% remis", 12 * mm, "right"),
    ("Manq.", 11 * mm, "right"),
    ("Endom.", 11 * mm, "right"),
    ("Engagé", 22 * mm, "right"),
)
MONEY = (
    ("Enveloppe", 62 * mm, "left"),
    ("Disponible", 24 * mm, "right"),
    ("Engagé", 24 * mm, "right"),
    ("Livré (remis)", 24 * mm, "right"),
    ("Reste", 24 * mm, "right"),
    ("% engagé", 22 * mm, "right"),
)


@dataclass(frozen=True)
class SummaryRow:
    """One line of the board: a department or a QPV (or the total)."""

    code: str
    name: str
    needs: int
    counts: dict[str, int]
    committed_cents: int

    @property
    def devices(self) -> int:
        return sum(self.counts.values())

    def share(self, column: str) -> float | None:
        return self.counts.get(column, 0) / self.needs if self.needs else None


@dataclass(frozen=True)
class SummaryEnvelope:
    label: str
    spendable_cents: int
    committed_cents: int
    delivered_cents: int
    note: str = ""  # e.g. the cité éducative 2020 cap

    @property
    def left_cents(self) -> int:
        return self.spendable_cents - self.committed_cents


@dataclass(frozen=True)
class SummaryDocument:
    """What the summary shows; the view fills it from logistique.domain.status."""

    territory: str  # « Région Hauts-de-France », « 59 — Nord »
    generated_at: datetime
    level: str  # « département » or « QPV »
    total: SummaryRow
    rows: list[SummaryRow]  # every row; the page shows the MAX_ROWS with the most needs
    envelopes: list[SummaryEnvelope] = field(default_factory=list)
    stuck_slips: int = 0
    stuck_days: int = 3
    envelopes_scope: str = "disponibles"  # « disponibles dans la région » for a department's summary


def summary_pdf(doc: SummaryDocument) -> bytes:
    """Render the one-page summary as a PDF."""
    canvas, buffer = new_canvas(
        f"Synthèse — {doc.territory}", "Tableau de bord de la continuité éducative : synthèse"
    )
    y = _header(canvas, doc)
    y = _kpis(canvas, doc, y - 4 * mm)
    y = _board(canvas, doc, y - 7 * mm)
    y = _money(canvas, doc, y - 7 * mm)
    _stuck(canvas, doc, y)
    _footer(canvas, doc)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _header(canvas: Canvas, doc: SummaryDocument) -> float:
    canvas.setFillColor(BLUE)
    canvas.rect(LEFT, TOP - 1.2 * mm, 18 * mm, 1.2 * mm, stroke=0, fill=1)
    label_caps(canvas, "Continuité éducative — équipements numériques", LEFT, TOP - 5.5 * mm)
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 19)
    canvas.drawString(LEFT, TOP - 14 * mm, pdf_text("Synthèse du tableau de bord"))
    canvas.setFillColor(BLACK)
    canvas.setFont(BOLD, 13)
    canvas.drawString(LEFT, TOP - 21 * mm, fit(doc.territory, BOLD, 13, 110 * mm))
    canvas.setFont(REGULAR, 9.5)
    canvas.setFillColor(GREY)
    canvas.drawRightString(RIGHT, TOP - 21 * mm, pdf_text(f"État au {datetime_fr(doc.generated_at)}"))
    canvas.setFillColor(BLACK)
    return TOP - 24 * mm


def _kpis(canvas: Canvas, doc: SummaryDocument, top: float) -> float:
    total = doc.total
    spendable = sum(e.spendable_cents for e in doc.envelopes)
    tiles = [
        (number_fr(total.needs), "besoins recensés"),
        (number_fr(total.devices), "équipements engagés"),
        (
            number_fr(total.counts["handed_over"]),
            f"remis, soit {percent_fr(total.share('handed_over'))} des besoins",
        ),
        (
            number_fr(total.counts["missing"] + total.counts["damaged"]),
            "manquants ou endommagés à la réception",
        ),
        (
            euros(total.committed_cents, whole=True),
            f"engagés sur {euros(spendable, whole=True)} {doc.envelopes_scope}",
        ),
    ]
    gap = 2.5 * mm
    width = (RIGHT - LEFT - gap * (len(tiles) - 1)) / len(tiles)
    height = 21 * mm
    for i, (value, caption) in enumerate(tiles):
        x = LEFT + i * (width + gap)
        canvas.setStrokeColor(GREY_LINE)
        canvas.setLineWidth(0.6)
        canvas.rect(x, top - height, width, height, stroke=1, fill=0)
        canvas.setFillColor(BLUE)
        canvas.rect(x, top - 1 * mm, width, 1 * mm, stroke=0, fill=1)
        canvas.setFont(BOLD, 14)
        canvas.drawString(x + 2.5 * mm, top - 8.5 * mm, fit(value, BOLD, 14, width - 5 * mm))
        canvas.setFillColor(GREY)
        canvas.setFont(REGULAR, 7)
        words = pdf_text(caption).split(" ")
        lines, current = [], ""
        for word in words:
            candidate = f"{current} {word}".strip()
            if canvas.stringWidth(candidate, REGULAR, 7) <= width - 5 * mm:
                current = candidate
            else:
                lines.append(current)
                current = word
        lines.append(current)
        for j, line in enumerate(lines[:3]):
            canvas.drawString(
                x + 2.5 * mm, top - 12.5 * mm - j * 3 * mm, fit(line, REGULAR, 7, width - 5 * mm)
            )
        canvas.setFillColor(BLACK)
    return top - height


def _section(canvas: Canvas, title: str, y: float) -> None:
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 11)
    canvas.drawString(LEFT, y, pdf_text(title))
    canvas.setFillColor(BLACK)


def _head(canvas: Canvas, columns, top: float) -> float:
    canvas.setFillColor(BLUE_LIGHT)
    canvas.rect(LEFT, top - HEAD, RIGHT - LEFT, HEAD, stroke=0, fill=1)
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 6.8)  # « Sur bord. » and « Expédiés » must clear their 12 mm neighbours
    x = LEFT
    for title, width, align in columns:
        if align == "right":
            canvas.drawRightString(x + width - 0.6 * mm, top - HEAD + 2.1 * mm, pdf_text(title))
        else:
            canvas.drawString(x + 1.2 * mm, top - HEAD + 2.1 * mm, pdf_text(title))
        x += width
    canvas.setFillColor(BLACK)
    return top - HEAD


def _cells(
    canvas: Canvas, columns, cells: list[str], y: float, *, bold: bool = False, mono_first=False
) -> None:
    x = LEFT
    for i, ((_title, width, align), cell) in enumerate(zip(columns, cells, strict=True)):
        font = BOLD if bold else (MONO if mono_first and i == 0 else REGULAR)
        size = 7.5 if font == MONO else 8
        text = fit(cell, font, size, width - 2.4 * mm)
        canvas.setFont(font, size)
        if align == "right":
            canvas.drawRightString(x + width - 1.2 * mm, y + 1.5 * mm, text)
        else:
            canvas.drawString(x + 1.2 * mm, y + 1.5 * mm, text)
        x += width


def _board_cells(row: SummaryRow) -> list[str]:
    c = row.counts
    return [
        row.code,
        row.name,
        number_fr(row.needs),
        number_fr(c["assigned"]),
        number_fr(c["on_slips"]),
        number_fr(c["shipped"]),
        number_fr(c["received"]),
        number_fr(c["handed_over"]),
        percent_fr(row.share("handed_over"), 0),
        number_fr(c["missing"]),
        number_fr(c["damaged"]),
        euros(row.committed_cents, whole=True),
    ]


def _board(canvas: Canvas, doc: SummaryDocument, top: float) -> float:
    shown = sorted(doc.rows, key=lambda r: (-r.needs, r.code))[:MAX_ROWS]
    title = f"Avancement par {doc.level}"
    if len(doc.rows) > len(shown):
        title += f" — les {len(shown)} qui ont le plus de besoins, sur {len(doc.rows)}"
    _section(canvas, title, top)
    y = _head(canvas, TABLE, top - 2 * mm)
    if not shown:
        y -= ROW
        canvas.setFillColor(GREY)
        canvas.setFont(REGULAR, 8.5)
        canvas.drawString(LEFT + 1.2 * mm, y + 1.5 * mm, "Aucun besoin ni équipement dans ce territoire.")
        canvas.setFillColor(BLACK)
    for i, row in enumerate(shown):
        y -= ROW
        if i % 2 == 1:
            canvas.setFillColor(GREY_LIGHT)
            canvas.rect(LEFT, y, RIGHT - LEFT, ROW, stroke=0, fill=1)
            canvas.setFillColor(BLACK)
        _cells(canvas, TABLE, _board_cells(row), y, mono_first=True)
    canvas.setStrokeColor(BLACK)
    canvas.setLineWidth(0.9)
    canvas.line(LEFT, y, RIGHT, y)
    y -= ROW
    total = doc.total
    _cells(canvas, TABLE, ["Total", *(_board_cells(total)[1:])], y, bold=True)
    return y


def _money(canvas: Canvas, doc: SummaryDocument, top: float) -> float:
    _section(canvas, "Argent engagé par enveloppe", top)
    y = _head(canvas, MONEY, top - 2 * mm)
    notes = [f"{e.label} : {e.note}" for e in doc.envelopes if e.note]
    room = int((y - FOOTER_TOP - 12 * mm - len(notes) * 3.6 * mm) // ROW)
    envelopes = doc.envelopes[: max(0, room)]
    if not doc.envelopes:
        y -= ROW
        canvas.setFillColor(GREY)
        canvas.setFont(REGULAR, 8.5)
        canvas.drawString(LEFT + 1.2 * mm, y + 1.5 * mm, "Aucune enveloppe pour ce territoire.")
        canvas.setFillColor(BLACK)
    for i, env in enumerate(envelopes):
        y -= ROW
        if i % 2 == 1:
            canvas.setFillColor(GREY_LIGHT)
            canvas.rect(LEFT, y, RIGHT - LEFT, ROW, stroke=0, fill=1)
            canvas.setFillColor(BLACK)
        share = env.committed_cents / env.spendable_cents if env.spendable_cents else None
        _cells(
            canvas,
            MONEY,
            [
                env.label + (" *" if env.note else ""),
                euros(env.spendable_cents, whole=True),
                euros(env.committed_cents, whole=True),
                euros(env.delivered_cents, whole=True),
                euros(env.left_cents, whole=True),
                percent_fr(share, 0),
            ],
            y,
        )
    if len(envelopes) < len(doc.envelopes):
        y -= ROW
        canvas.setFont(REGULAR, 8)
        canvas.drawString(
            LEFT + 1.2 * mm, y + 1.5 * mm, pdf_text(f"… et {len(doc.envelopes) - len(envelopes)} autre(s).")
        )
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.6)
    canvas.line(LEFT, y, RIGHT, y)
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 7.5)
    for note in notes:
        y -= 3.6 * mm
        canvas.drawString(LEFT, y, fit(f"* {note}", REGULAR, 7.5, RIGHT - LEFT))
    canvas.setFillColor(BLACK)
    return y


def _stuck(canvas: Canvas, doc: SummaryDocument, y: float) -> None:
    y -= 8 * mm
    canvas.setFont(BOLD, 10)
    days = doc.stuck_days
    text = (
        f"Bordereaux bloqués depuis plus de {days} jour{'s' if days > 1 else ''} "
        f"(émis non expédiés, ou expédiés non réceptionnés) : {number_fr(doc.stuck_slips)}"
    )
    canvas.drawString(LEFT, y, fit(text, BOLD, 10, RIGHT - LEFT))


def _footer(canvas: Canvas, doc: SummaryDocument) -> None:
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.4)
    canvas.line(LEFT, 14 * mm, RIGHT, 14 * mm)
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 7.5)
    canvas.drawString(
        LEFT,
        10 * mm,
        fit(
            f"logistique — synthèse générée le {datetime_fr(doc.generated_at)} ; données agrégées, "
            "aucune donnée personnelle.",
            REGULAR,
            7.5,
            150 * mm,
        ),
    )
    canvas.drawRightString(RIGHT, 10 * mm, "page 1/1")
    canvas.setFillColor(BLACK)
