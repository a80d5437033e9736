"""The distribution-day list (A4 landscape): the families a coordinator calls once their devices have arrived.

Personal data by purpose: only the coordinators of the pupils' organisation may print it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from logistique.formatting import datetime_fr
from logistique.pdf.drawing import (
    BLACK,
    BLUE,
    BLUE_LIGHT,
    BOLD,
    GREY,
    GREY_LINE,
    MONO,
    REGULAR,
    fit,
    new_canvas,
)

PAGE_WIDTH, PAGE_HEIGHT = landscape(A4)
LEFT, RIGHT = 12 * mm, PAGE_WIDTH - 12 * mm
TOP, BOTTOM = PAGE_HEIGHT - 12 * mm, 14 * mm
ROW = 7 * mm

# (title, width, font) — the « Remis » column is left empty, to tick by hand on the day
COLUMNS = (
    ("Élève", 50 * mm, BOLD),
    ("Référence", 24 * mm, MONO),
    ("Niveau", 16 * mm, REGULAR),
    ("Responsable", 44 * mm, REGULAR),
    ("Téléphone", 28 * mm, MONO),
    ("Équipement", 46 * mm, REGULAR),
    ("Étiquette", 26 * mm, MONO),
    ("Bordereau", 24 * mm, MONO),
    ("Remis", RIGHT - LEFT - 258 * mm, REGULAR),
)


def distribution_pdf(organisation: str, generated_at: datetime, rows: Sequence[Sequence[str]]) -> bytes:
    """One line per device to hand over; header and page number on every page."""
    canvas, buffer = new_canvas(f"Liste de distribution — {organisation}", "Remises aux familles")
    canvas.setPageSize((PAGE_WIDTH, PAGE_HEIGHT))
    per_page = int((TOP - 24 * mm - BOTTOM) // ROW)
    pages = [rows[i : i + per_page] for i in range(0, len(rows), per_page)] or [[]]
    for number, page in enumerate(pages, start=1):
        y = _header(canvas, organisation, generated_at, len(rows))
        for i, row in enumerate(page):
            y -= ROW
            _row(canvas, row, y, shaded=i % 2 == 1)
        if not rows:
            canvas.setFont(REGULAR, 10)
            canvas.drawString(LEFT, y - 8 * mm, "Aucun équipement reçu n'attend sa remise.")
        canvas.setFont(REGULAR, 7.5)
        canvas.setFillColor(GREY)
        canvas.drawString(LEFT, 8 * mm, "Document nominatif : à détruire après la distribution.")
        canvas.drawRightString(RIGHT, 8 * mm, f"page {number}/{len(pages)}")
        canvas.setFillColor(BLACK)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _header(canvas: Canvas, organisation: str, generated_at: datetime, count: int) -> float:
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 16)
    canvas.drawString(LEFT, TOP - 6 * mm, "Liste de distribution")
    canvas.setFillColor(BLACK)
    canvas.setFont(REGULAR, 10)
    canvas.drawString(LEFT, TOP - 12 * mm, fit(organisation, REGULAR, 10, 160 * mm))
    plural = "s" if count > 1 else ""
    caption = f"{count} équipement{plural} à remettre — {datetime_fr(generated_at)}"
    canvas.drawRightString(RIGHT, TOP - 12 * mm, caption)
    top = TOP - 18 * mm
    canvas.setFillColor(BLUE_LIGHT)
    canvas.rect(LEFT, top - 6 * mm, RIGHT - LEFT, 6 * mm, stroke=0, fill=1)
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 8)
    x = LEFT
    for title, width, _font in COLUMNS:
        canvas.drawString(x + 1.2 * mm, top - 4.2 * mm, title)
        x += width
    canvas.setFillColor(BLACK)
    return top - 6 * mm


def _row(canvas: Canvas, row: Sequence[str], y: float, *, shaded: bool) -> None:
    if shaded:
        canvas.setFillColor(BLUE_LIGHT)
        canvas.setFillAlpha(0.35)
        canvas.rect(LEFT, y, RIGHT - LEFT, ROW, stroke=0, fill=1)
        canvas.setFillAlpha(1)
        canvas.setFillColor(BLACK)
    x = LEFT
    for (_title, width, font), value in zip(COLUMNS, [*row, ""], strict=True):
        canvas.setFont(font, 8.5)
        canvas.drawString(x + 1.2 * mm, y + 2.4 * mm, fit(value, font, 8.5, width - 2.4 * mm))
        x += width
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.3)
    canvas.rect(RIGHT - COLUMNS[-1][1] + 3 * mm, y + 1.5 * mm, 4 * mm, 4 * mm, stroke=1, fill=0)
    canvas.line(LEFT, y, RIGHT, y)
