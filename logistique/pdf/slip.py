"""The delivery slip (« bon de livraison »): one A4 portrait slip, or a batch of slips in one PDF."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from logistique.formatting import datetime_fr
from logistique.pdf.documents import Address, SlipDocument, SlipLine
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
    wrap,
)
from logistique.pdf.qr import draw_matrix, qr_matrix

MARGIN = 15 * mm
LEFT, RIGHT = MARGIN, PAGE_WIDTH - MARGIN
TOP = PAGE_HEIGHT - MARGIN
CONTENT_BOTTOM = 20 * mm  # above the page footer

QR_SIZE = 48 * mm  # quiet zone included: a version-4 symbol is then ~38 mm wide, enough for a cheap print
HINT = "Scannez pour préparer ou réceptionner ce bordereau"

# (title, width, font, size) — the table is the full content width (180 mm).
COLUMNS = (
    ("N°", 9 * mm, REGULAR, 8),
    ("Type", 31 * mm, REGULAR, 8.5),
    ("Modèle", 50 * mm, REGULAR, 8.5),
    ("N° de série", 34 * mm, MONO, 8.5),
    ("Étiquette", 26 * mm, MONO, 8.5),
    ("Élève (référence)", 30 * mm, MONO, 8.5),
)
HEAD_HEIGHT = 7 * mm
ROW_HEIGHT = 6 * mm

FIRST_TABLE_TOP = 206 * mm  # below the QR code and the addresses
NEXT_TABLE_TOP = TOP - 20 * mm  # below the compact header of a continuation page
CLOSING_HEIGHT = 76 * mm  # totals, reserves and signatures, drawn on the last page only


def _capacity(table_top: float, bottom: float) -> int:
    return int((table_top - HEAD_HEIGHT - bottom) // ROW_HEIGHT)


FIRST_FULL = _capacity(FIRST_TABLE_TOP, CONTENT_BOTTOM)
FIRST_LAST = _capacity(FIRST_TABLE_TOP, CONTENT_BOTTOM + CLOSING_HEIGHT)
NEXT_FULL = _capacity(NEXT_TABLE_TOP, CONTENT_BOTTOM)
NEXT_LAST = _capacity(NEXT_TABLE_TOP, CONTENT_BOTTOM + CLOSING_HEIGHT)


def paginate(count: int) -> list[tuple[int, int]]:
    """Split ``count`` table rows into pages ``(start, end)``; the last page keeps room for the signatures.

    The last page always carries at least one row when there are rows, so the signatures never stand alone.
    """
    pages: list[tuple[int, int]] = []
    start = 0
    while True:
        first = not pages
        remaining = count - start
        if remaining <= (FIRST_LAST if first else NEXT_LAST):
            pages.append((start, count))
            return pages
        take = min(FIRST_FULL if first else NEXT_FULL, remaining - 1)
        pages.append((start, start + take))
        start += take


@dataclass
class _Options:
    draw_qr: bool = True  # False only for the benchmark's floor: the same page without the code


def slip_pdf(doc: SlipDocument) -> bytes:
    """Render one delivery slip as a PDF."""
    return slips_pdf([doc])


def slips_pdf(
    docs: Iterable[SlipDocument],
    progress: Callable[[int], None] | None = None,
    *,
    _options: _Options | None = None,
) -> bytes:
    """Render several slips into one PDF, each starting on a new page; ``progress(n)`` after the n-th slip."""
    options = _options or _Options()
    canvas, buffer = new_canvas("Bons de livraison", "Bons de livraison — continuité éducative")
    count = 0
    for doc in docs:
        if count == 0:
            canvas.setTitle(pdf_text(f"{doc.title} {doc.number}"))
        _draw_slip(canvas, doc, options)
        count += 1
        if progress is not None:
            progress(count)
    if count == 0:
        raise ValueError("Aucun bordereau à imprimer.")
    canvas.save()
    return buffer.getvalue()


def _draw_slip(canvas: Canvas, doc: SlipDocument, options: _Options) -> None:
    pages = paginate(len(doc.lines))
    for index, (start, end) in enumerate(pages, start=1):
        if index == 1:
            _first_header(canvas, doc, options)
            table_top = FIRST_TABLE_TOP
        else:
            _next_header(canvas, doc)
            table_top = NEXT_TABLE_TOP
        bottom = _table(canvas, doc.lines, start, end, table_top)
        if index == len(pages):
            _closing(canvas, doc, bottom)
        _footer(canvas, doc, index, len(pages))
        canvas.showPage()


def _first_header(canvas: Canvas, doc: SlipDocument, options: _Options) -> None:
    qr_left = RIGHT - QR_SIZE
    text_width = qr_left - LEFT - 6 * mm

    canvas.setFillColor(BLUE)
    canvas.rect(LEFT, TOP - 1.2 * mm, 18 * mm, 1.2 * mm, stroke=0, fill=1)
    label_caps(canvas, "Continuité éducative — équipements numériques", LEFT, TOP - 5.5 * mm)
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 22)
    canvas.drawString(LEFT, TOP - 15 * mm, pdf_text(doc.title))
    canvas.setFillColor(BLACK)
    canvas.setFont(BOLD, 17)
    canvas.drawString(LEFT, TOP - 24 * mm, fit(f"N° {doc.number}", BOLD, 17, text_width))

    y = TOP - 32 * mm
    canvas.setFont(BOLD, 8.5)
    status = fit(doc.status_label, BOLD, 8.5, 60 * mm)
    width = canvas.stringWidth(status, BOLD, 8.5) + 5 * mm
    canvas.setFillColor(BLUE_LIGHT)
    canvas.roundRect(LEFT, y - 1.8 * mm, width, 5.6 * mm, 2.8 * mm, stroke=0, fill=1)
    canvas.setFillColor(BLUE)
    canvas.drawString(LEFT + 2.5 * mm, y, status)
    canvas.setFillColor(BLACK)
    canvas.setFont(REGULAR, 9.5)
    issued = f"Émis le {datetime_fr(doc.issued_at)}" if doc.issued_at else "Pas encore émis"
    canvas.drawString(LEFT + width + 4 * mm, y, pdf_text(issued))

    if doc.lot_references:
        canvas.setFont(REGULAR, 9.5)
        canvas.drawString(LEFT, TOP - 38.5 * mm, "Lots :")
        canvas.setFont(MONO, 9)
        canvas.drawString(
            LEFT + 11 * mm, TOP - 38.5 * mm, fit(", ".join(doc.lot_references), MONO, 9, text_width - 11 * mm)
        )

    y = TOP - 47 * mm
    column = (text_width - 6 * mm) / 2
    _address(canvas, doc.sender_caption, doc.sender, LEFT, y, column)
    _address(canvas, "Destinataire", doc.destination, LEFT + column + 6 * mm, y, column)

    qr_bottom = TOP - QR_SIZE
    if options.draw_qr:
        draw_matrix(canvas, qr_matrix(doc.qr_url), qr_left, qr_bottom, QR_SIZE)
    centre = qr_left + QR_SIZE / 2
    canvas.setFont(BOLD, 9)
    canvas.drawCentredString(centre, qr_bottom - 1 * mm, fit(doc.number, BOLD, 9, QR_SIZE))
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 7)
    for i, line in enumerate(wrap(HINT, REGULAR, 7, QR_SIZE - 2 * mm)):
        canvas.drawCentredString(centre, qr_bottom - 4.5 * mm - i * 3 * mm, line)
    canvas.setFillColor(BLACK)


def _address(canvas: Canvas, caption: str, address: Address, x: float, y: float, width: float) -> None:
    """A caption, then the name in bold on at most two lines, then the street, the town and the phone."""
    label_caps(canvas, caption, x, y)
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.5)
    canvas.line(x, y - 1.5 * mm, x + width, y - 1.5 * mm)
    y -= 6 * mm
    name = wrap(address.name, BOLD, 9.5, width)
    if len(name) > 2:
        name = [name[0], fit(" ".join(name[1:]), BOLD, 9.5, width)]
    canvas.setFont(BOLD, 9.5)
    for line in name:
        canvas.drawString(x, y, line)
        y -= 4.2 * mm
    canvas.setFont(REGULAR, 9)
    for line in address.lines[1:]:
        canvas.drawString(x, y, fit(line, REGULAR, 9, width))
        y -= 4.2 * mm


def _next_header(canvas: Canvas, doc: SlipDocument) -> None:
    canvas.setFillColor(BLUE)
    canvas.rect(LEFT, TOP - 1.2 * mm, 18 * mm, 1.2 * mm, stroke=0, fill=1)
    canvas.setFont(BOLD, 15)
    canvas.drawString(LEFT, TOP - 9 * mm, pdf_text(doc.title))
    canvas.setFillColor(BLACK)
    canvas.setFont(BOLD, 15)
    canvas.drawRightString(RIGHT, TOP - 9 * mm, fit(f"N° {doc.number}", BOLD, 15, 100 * mm))
    canvas.setFont(REGULAR, 8.5)
    canvas.setFillColor(GREY)
    canvas.drawString(
        LEFT, TOP - 14 * mm, fit(f"{doc.sender.name} — vers {doc.destination.name}", REGULAR, 8.5, 120 * mm)
    )
    canvas.drawRightString(RIGHT, TOP - 14 * mm, "suite de la liste des équipements")
    canvas.setFillColor(BLACK)


def _table(canvas: Canvas, lines: list[SlipLine], start: int, end: int, top: float) -> float:
    """Draw rows ``start:end`` under a header row; return the y of the table's bottom edge."""
    width = RIGHT - LEFT
    canvas.setFillColor(BLUE_LIGHT)
    canvas.rect(LEFT, top - HEAD_HEIGHT, width, HEAD_HEIGHT, stroke=0, fill=1)
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 8)
    x = LEFT
    for title, col_width, _font, _size in COLUMNS:
        canvas.drawString(x + 1.5 * mm, top - HEAD_HEIGHT + 2.4 * mm, title)
        x += col_width

    y = top - HEAD_HEIGHT
    if start == end:
        canvas.setFillColor(GREY)
        canvas.setFont(REGULAR, 9)
        canvas.drawString(LEFT + 1.5 * mm, y - ROW_HEIGHT + 2 * mm, "Aucun équipement sur ce bordereau.")
        y -= ROW_HEIGHT
    canvas.setFillColor(GREY_LIGHT)
    for i in range(start, end):
        if (i - start) % 2 == 1:
            canvas.rect(LEFT, y - (i - start + 1) * ROW_HEIGHT, width, ROW_HEIGHT, stroke=0, fill=1)
    canvas.setFillColor(BLACK)
    # One text object for the whole table: a drawString per cell would open and close sixty of them.
    text = canvas.beginText()
    current = ("", 0.0)
    for i in range(start, end):
        line = lines[i]
        y -= ROW_HEIGHT
        cells = (str(i + 1), line.kind, line.model, line.serial, line.asset_tag, line.pupil_reference)
        x = LEFT
        for cell, (_title, col_width, font, size) in zip(cells, COLUMNS, strict=True):
            room = col_width - 3 * mm
            if font == MONO:  # a serial or a reference is shrunk rather than cut: someone checks it by eye
                size = max(6.0, min(size, room / max(1, len(cell)) / 0.61))
            if (font, size) != current:
                text.setFont(font, size)
                current = (font, size)
            text.setTextOrigin(x + 1.5 * mm, y + 2 * mm)
            text.textLine(fit(cell, font, size, room))  # textOut would measure the string for nothing
            x += col_width
    canvas.drawText(text)
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.6)
    canvas.line(LEFT, y, RIGHT, y)
    return y


def _closing(canvas: Canvas, doc: SlipDocument, table_bottom: float) -> None:
    """Totals, the reserves box and both signature boxes, right under the table."""
    y = table_bottom - 7 * mm
    totals = doc.totals
    canvas.setFont(BOLD, 9.5)
    total = sum(totals.values())
    caption = pdf_text(f"Total : {total} équipement{'s' if total > 1 else ''}", BOLD)
    canvas.drawString(LEFT, y, caption)
    indent = max(42 * mm, stringWidth(caption, BOLD, 9.5) + 4 * mm)
    parts = [f"{kind} : {n}" for kind, n in totals.items()]
    canvas.setFont(REGULAR, 9.5)
    canvas.drawString(LEFT + indent, y, fit("   ·   ".join(parts), REGULAR, 9.5, RIGHT - LEFT - indent))

    width = RIGHT - LEFT
    y -= 6 * mm
    height = 22 * mm
    _box(canvas, LEFT, y - height, width, height, "Réserves (matériel manquant, abîmé ou non conforme)")

    y -= height + 5 * mm
    height = 34 * mm
    half = (width - 6 * mm) / 2
    _box(canvas, LEFT, y - height, half, height, doc.sender_box)
    _box(canvas, LEFT + half + 6 * mm, y - height, half, height, doc.destination_box)
    canvas.setFont(REGULAR, 8)
    canvas.setFillColor(GREY)
    for x in (LEFT, LEFT + half + 6 * mm):
        canvas.drawString(x + 2.5 * mm, y - 11 * mm, "Nom :")
        canvas.drawString(x + 2.5 * mm, y - 17 * mm, "Date :")
    canvas.setFillColor(BLACK)


def _box(canvas: Canvas, x: float, y: float, width: float, height: float, caption: str) -> None:
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.7)
    canvas.roundRect(x, y, width, height, 1.5 * mm, stroke=1, fill=0)
    canvas.setFont(BOLD, 8.5)
    canvas.drawString(x + 2.5 * mm, y + height - 5 * mm, pdf_text(caption))


def _footer(canvas: Canvas, doc: SlipDocument, page: int, pages: int) -> None:
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.4)
    canvas.line(LEFT, 14 * mm, RIGHT, 14 * mm)
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 7.5)
    canvas.drawString(LEFT, 10 * mm, fit(f"{doc.title} N° {doc.number}", REGULAR, 7.5, 120 * mm))
    canvas.drawRightString(RIGHT, 10 * mm, f"page {page}/{pages}")
    canvas.setFillColor(BLACK)
