"""The family's copy of a restitution: « Reçu de restitution », what was brought back at the end of the loan
and in which state. Drawn with the handover receipt's pieces and the embedded DejaVu font (every name)."""

from __future__ import annotations

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from logistique.formatting import datetime_fr
from logistique.pdf.documents import RestitutionDevice, RestitutionDocument
from logistique.pdf.drawing import (
    BLACK,
    BOLD,
    GREY,
    GREY_LIGHT,
    MONO,
    REGULAR,
    fit,
    label_caps,
    new_canvas,
    pdf_text,
    wrap,
)
from logistique.pdf.receipt import BOTTOM, LEFT, RIGHT, TOP, WIDTH, _paragraph, footer, header, table_head

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
    subtitle = "Fin de prêt — plan « continuité éducative »"
    return header(canvas, doc.organisation, doc.number, doc.returned_at, doc.pupil_reference, TITLE, subtitle)


def _table_head(canvas: Canvas, y: float) -> float:
    return table_head(canvas, y, COLUMNS)


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
    footer(canvas, f"{TITLE} N° {doc.number} — exemplaire à conserver par la famille", page)
