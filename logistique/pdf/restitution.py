"""The family's copy of a restitution: « Reçu de restitution », what was brought back at the end of the loan
and in which state. Drawn with the handover receipt's pieces and the embedded DejaVu font (every name)."""

from __future__ import annotations

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from logistique.formatting import date_fr, datetime_fr
from logistique.pdf.documents import RestitutionDevice, RestitutionDocument
from logistique.pdf.drawing import (
    BLACK,
    BLUE,
    BLUE_LIGHT,
    BOLD,
    GREY,
    GREY_LIGHT,
    GREY_LINE,
    MONO,
    REGULAR,
    fit,
    label_caps,
    new_canvas,
    pdf_text,
    wrap,
)
from logistique.pdf.receipt import BOTTOM, LEFT, RIGHT, TOP, WIDTH, _paragraph

TITLE = "Reçu de restitution"
COLUMNS = (("Type", 34 * mm, REGULAR), ("Modèle", 46 * mm, REGULAR), ("N° de série", 40 * mm, MONO))
COLUMNS += (("État au retour", WIDTH - sum(c[1] for c in COLUMNS), REGULAR),)
ROW_HEIGHT = 6 * mm


def restitution_pdf(doc: RestitutionDocument) -> bytes:
    """Render the restitution receipt the family keeps."""
    canvas, buffer = new_canvas(f"{TITLE} {doc.number}", f"{TITLE} — continuité éducative")
    page = 1
    y = _header(canvas, doc)
    y = _paragraph(canvas, _intro(doc), y, size=10)
    y = _table_head(canvas, y + 2 * mm)
    for device in doc.devices:
        height = ROW_HEIGHT * (2 if device.reason else 1)
        if y - height < BOTTOM + 40 * mm:
            _footer(canvas, doc, page)
            canvas.showPage()
            page += 1
            canvas.setFont(BOLD, 14)
            canvas.drawString(LEFT, TOP - 6 * mm, pdf_text(f"{TITLE} N° {doc.number}"))
            y = _table_head(canvas, TOP - 16 * mm)
        y = _row(canvas, device, y)
    y -= 9 * mm
    y = _paragraph(
        canvas,
        "La restitution met fin au prêt pour les équipements ci-dessus. Un équipement rendu défectueux est "
        "contrôlé par l'entrepôt ; la famille n'a rien à payer pour une panne d'usage normal.",
        y,
        size=9.5,
    )
    label_caps(canvas, "Reçu par la structure", LEFT, y)
    canvas.setFont(REGULAR, 9)
    canvas.drawString(LEFT, y - 6 * mm, fit(doc.received_by, REGULAR, 9, WIDTH / 2))
    canvas.drawString(LEFT, y - 10.5 * mm, pdf_text(f"le {datetime_fr(doc.returned_at)}"))
    _footer(canvas, doc, page)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _intro(doc: RestitutionDocument) -> str:
    plural = len(doc.devices) > 1
    what = "les équipements numériques décrits" if plural else "l'équipement numérique décrit"
    return (
        f"{doc.organisation.name} atteste avoir reçu le {datetime_fr(doc.returned_at)}, de la famille de "
        f"{doc.pupil_name} (élève de référence {doc.pupil_reference}), {what} ci-dessous, prêté"
        f"{'s' if plural else ''} pour la continuité éducative."
    )


def _header(canvas: Canvas, doc: RestitutionDocument) -> float:
    canvas.setFillColor(BLUE)
    canvas.rect(LEFT, TOP - 1.2 * mm, 18 * mm, 1.2 * mm, stroke=0, fill=1)
    y = TOP - 7 * mm
    canvas.setFillColor(BLACK)
    for i, line in enumerate(doc.organisation.lines):
        font = BOLD if i == 0 else REGULAR
        canvas.setFont(font, 10 if i == 0 else 9)
        canvas.drawString(LEFT, y, fit(line, font, 10, 100 * mm))
        y -= 4.4 * mm
    canvas.setFont(BOLD, 10)
    canvas.drawRightString(RIGHT, TOP - 7 * mm, pdf_text(f"N° {doc.number}"))
    canvas.setFont(REGULAR, 9)
    canvas.drawRightString(RIGHT, TOP - 11.4 * mm, pdf_text(f"Date : {date_fr(doc.returned_at)}"))
    canvas.drawRightString(RIGHT, TOP - 15.8 * mm, pdf_text(f"Élève (référence) : {doc.pupil_reference}"))
    y = min(y, TOP - 20 * mm) - 10 * mm
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 22)
    canvas.drawString(LEFT, y, pdf_text(TITLE))
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 9.5)
    canvas.drawString(LEFT, y - 6 * mm, "Fin de prêt — plan « continuité éducative »")
    canvas.setFillColor(BLACK)
    return y - 15 * mm


def _table_head(canvas: Canvas, y: float) -> float:
    canvas.setFillColor(BLUE_LIGHT)
    canvas.rect(LEFT, y - 7 * mm, WIDTH, 7 * mm, stroke=0, fill=1)
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 8.5)
    x = LEFT
    for title, width, _font in COLUMNS:
        canvas.drawString(x + 1.5 * mm, y - 4.6 * mm, pdf_text(title, BOLD))
        x += width
    canvas.setFillColor(BLACK)
    return y - 7 * mm


def _row(canvas: Canvas, device: RestitutionDevice, y: float) -> float:
    y -= ROW_HEIGHT
    x = LEFT
    for text, (_title, width, font) in zip(
        (device.kind, device.model, device.serial, device.state), COLUMNS, strict=True
    ):
        canvas.setFont(font, 9)
        canvas.drawString(x + 1.5 * mm, y + 2 * mm, fit(text, font, 9, width - 3 * mm))
        x += width
    if device.reason:
        y -= ROW_HEIGHT
        canvas.setFillColor(GREY)
        canvas.setFont(REGULAR, 8.5)
        lines = wrap(f"Motif : {device.reason}", REGULAR, 8.5, WIDTH - 36 * mm)
        canvas.drawString(LEFT + 34 * mm + 1.5 * mm, y + 2 * mm, lines[0] if lines else "")
        canvas.setFillColor(BLACK)
    canvas.setStrokeColor(GREY_LIGHT)
    canvas.setLineWidth(0.5)
    canvas.line(LEFT, y, RIGHT, y)
    return y


def _footer(canvas: Canvas, doc: RestitutionDocument, page: int) -> None:
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.4)
    canvas.line(LEFT, 14 * mm, RIGHT, 14 * mm)
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 7.5)
    canvas.drawString(
        LEFT, 10 * mm, pdf_text(f"{TITLE} N° {doc.number} — exemplaire à conserver par la famille")
    )
    canvas.drawRightString(RIGHT, 10 * mm, f"page {page}")
    canvas.setFillColor(BLACK)
