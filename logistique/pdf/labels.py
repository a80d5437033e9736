"""Device labels: A4 sheets of 3 × 8 self-adhesive labels of 70 × 37 mm (the common borderless format).

Each label carries the QR code of ``<base>/d/<asset tag>`` for phones, the asset tag in bold, the model, and
the serial as a Code 128 barcode for handheld scanners, with the serial written under it.
"""

from __future__ import annotations

from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from logistique.pdf.documents import Label
from logistique.pdf.drawing import BOLD, MONO, PAGE_HEIGHT, REGULAR, fit, new_canvas, pdf_text, wrap
from logistique.pdf.qr import draw_qr

COLUMNS, ROWS = 3, 8
LABEL_WIDTH, LABEL_HEIGHT = 70 * mm, 37 * mm
SHEET_TOP = PAGE_HEIGHT - (PAGE_HEIGHT - ROWS * LABEL_HEIGHT) / 2  # 0.5 mm above and below the grid
PER_SHEET = COLUMNS * ROWS

QR_SIZE = 24 * mm  # quiet zone included; it doubles as the label's margin on that side
BARCODE_HEIGHT = 6.5 * mm
BARCODE_MAX_MODULE = 0.38 * mm
PADDING = 3 * mm


def labels_pdf(labels: list[Label]) -> bytes:
    """Render labels in reading order on as many A4 sheets as needed."""
    if not labels:
        raise ValueError("Aucune étiquette à imprimer.")
    canvas, buffer = new_canvas("Étiquettes d'équipements", "Étiquettes 70 × 37 mm, planches de 24")
    for index, label in enumerate(labels):
        slot = index % PER_SHEET
        if index and slot == 0:
            canvas.showPage()
        row, column = divmod(slot, COLUMNS)
        _draw_label(canvas, label, column * LABEL_WIDTH, SHEET_TOP - (row + 1) * LABEL_HEIGHT)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def label_origin(index: int) -> tuple[float, float]:
    """Lower-left corner, in points, of the ``index``-th label of its sheet (used by the tests to crop)."""
    row, column = divmod(index % PER_SHEET, COLUMNS)
    return column * LABEL_WIDTH, SHEET_TOP - (row + 1) * LABEL_HEIGHT


def _draw_label(canvas: Canvas, label: Label, x: float, y: float) -> None:
    top = y + LABEL_HEIGHT
    # 2.5 mm plus the quiet zone keep the symbol clear of the ~4 mm a printer leaves blank at the sheet edge.
    draw_qr(canvas, label.url, x + 2.5 * mm, top - 1 * mm - QR_SIZE, QR_SIZE)

    text_x = x + QR_SIZE + 4 * mm
    text_width = x + LABEL_WIDTH - PADDING - text_x
    canvas.setFont(BOLD, 12)
    canvas.drawString(text_x, top - 7.5 * mm, fit(label.asset_tag, BOLD, 12, text_width))
    canvas.setFont(REGULAR, 7.5)
    for i, line in enumerate(wrap(label.model, REGULAR, 7.5, text_width)[:3]):
        canvas.drawString(text_x, top - 12 * mm - i * 3.2 * mm, line)

    _draw_code128(canvas, label.serial, x + PADDING, y + 4.3 * mm, LABEL_WIDTH - 2 * PADDING)
    canvas.setFont(MONO, 8)
    canvas.drawCentredString(
        x + LABEL_WIDTH / 2, y + 1.6 * mm, fit(label.serial, MONO, 8, LABEL_WIDTH - 2 * PADDING)
    )


def _draw_code128(canvas: Canvas, value: str, x: float, y: float, width: float) -> None:
    """Centre the Code 128 of ``value`` in ``width``, bars as wide as room allows, quiet zones included."""
    value = pdf_text(value)
    modules = Code128(value, barWidth=1, quiet=0, humanReadable=0).width
    bar = min(width / (modules + 20), BARCODE_MAX_MODULE)  # 10 modules of quiet zone on each side
    barcode = Code128(
        value,
        barWidth=bar,
        barHeight=BARCODE_HEIGHT,
        humanReadable=0,
        quiet=1,
        lquiet=10 * bar,
        rquiet=10 * bar,
    )
    barcode.drawOn(canvas, x + (width - barcode.width) / 2, y)
