"""The family's copy of a handover: « Attestation de remise » (gift) or « Convention de prêt » (loan)."""

from __future__ import annotations

import io
from datetime import datetime

from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from logistique.formatting import date_fr, datetime_fr
from logistique.pdf.documents import Address, ReceiptDevice, ReceiptDocument
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

MARGIN = 18 * mm
LEFT, RIGHT = MARGIN, PAGE_WIDTH - MARGIN
WIDTH = RIGHT - LEFT
TOP = PAGE_HEIGHT - 15 * mm
BOTTOM = 22 * mm

TITLES = {"don": "Attestation de remise", "pret": "Convention de prêt"}
ARTICLE_1880 = (
    "L'emprunteur est tenu de veiller raisonnablement à la garde et à la conservation de la chose prêtée. "
    "Il ne peut s'en servir qu'à l'usage déterminé par sa nature ou par la convention ; le tout à peine de "
    "dommages-intérêts, s'il y a lieu."
)
DATA_NOTE = (
    "Les données personnelles sont effacées à la clôture de l'opération ; seules la référence, les dates et "
    "l'empreinte de la signature sont conservées."
)

COLUMNS = (("Type", 38 * mm, REGULAR), ("Modèle", 58 * mm, REGULAR), ("N° de série", 42 * mm, MONO))
COLUMNS += (("Étiquette", WIDTH - sum(c[1] for c in COLUMNS), MONO),)
ROW_HEIGHT = 6 * mm
SIGNATURE_HEIGHT = 58 * mm  # signature box, fingerprint and the data-protection note


def receipt_pdf(doc: ReceiptDocument) -> bytes:
    """Render the handover paper: a gift attestation or a loan agreement, signed by the pupil's guardian."""
    if doc.mode not in TITLES:
        raise ValueError(f"Mode de remise inconnu : {doc.mode!r} (attendu « don » ou « pret »).")
    title = TITLES[doc.mode]
    canvas, buffer = new_canvas(f"{title} {doc.number}", f"{title} — continuité éducative")
    page = 1
    y = _header(canvas, doc, title)
    y = _paragraph(canvas, _intro(doc), y, size=10)

    y = _table_head(canvas, y + 2 * mm)
    for device in doc.devices:
        if y - ROW_HEIGHT < BOTTOM:
            _footer(canvas, doc, title, page)
            canvas.showPage()
            page += 1
            y = _table_head(canvas, _continuation(canvas, doc, title))
        y = _row(canvas, device, y)
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.6)
    canvas.line(LEFT, y, RIGHT, y)
    y -= 9 * mm

    blocks = _loan_blocks(doc) if doc.mode == "pret" else []
    needed = sum(_paragraph_height(text, size) for text, size, _ in blocks) + SIGNATURE_HEIGHT
    if y - needed < BOTTOM:
        _footer(canvas, doc, title, page)
        canvas.showPage()
        page += 1
        y = _continuation(canvas, doc, title)
    for text, size, framed in blocks:
        y = _paragraph(canvas, text, y, size=size, framed=framed)
    _signature(canvas, doc, y)
    _footer(canvas, doc, title, page)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _intro(doc: ReceiptDocument) -> str:
    who = f"{doc.receiver_name}, {doc.relation} de l'élève de référence {doc.pupil_reference},"
    plural = len(doc.devices) > 1
    what = "les équipements numériques décrits" if plural else "l'équipement numérique décrit"
    when = datetime_fr(doc.handed_over_at)
    if doc.mode == "don":
        return (
            f"{doc.organisation.name} atteste avoir remis le {when} à {who} à titre de don, "
            f"{what} ci-dessous, destiné{'s' if plural else ''} à la continuité éducative de l'élève."
        )
    return (
        f"{doc.organisation.name} (le prêteur) prête à {who} l'emprunteur, à compter du {when}, "
        f"{what} ci-dessous, pour permettre à l'élève de suivre sa scolarité à distance. Le prêt est gratuit "
        "(prêt à usage, articles 1875 et suivants du Code civil)."
    )


def _loan_blocks(doc: ReceiptDocument) -> list[tuple[str, float, bool]]:
    """The loan's obligations: article 1880 quoted, then the return date."""
    until = f"au plus tard le {date_fr(doc.loan_until)}" if doc.loan_until else "à la demande de la structure"
    return [
        ("Obligations de l'emprunteur (article 1880 du Code civil) :", 9.5, False),
        (f"« {ARTICLE_1880} »", 9.5, True),
        (
            "Restitution : le matériel est rendu à la structure, complet et avec ses accessoires, "
            f"à la fin du prêt, {until}. Une panne, une perte ou un vol est signalé sans délai "
            "à la structure.",
            9.5,
            False,
        ),
    ]


def _header(canvas: Canvas, doc: ReceiptDocument, title: str) -> float:
    subtitle = "Équipement numérique reconditionné — plan « continuité éducative »"
    return header(
        canvas, doc.organisation, doc.number, doc.handed_over_at, doc.pupil_reference, title, subtitle
    )


def header(
    canvas: Canvas,
    organisation: Address,
    number: str,
    when: datetime,
    pupil_reference: str,
    title: str,
    subtitle: str,
) -> float:
    """The top of a family's paper: the organisation, number, date and pupil reference, the title."""
    canvas.setFillColor(BLUE)
    canvas.rect(LEFT, TOP - 1.2 * mm, 18 * mm, 1.2 * mm, stroke=0, fill=1)
    y = TOP - 7 * mm
    canvas.setFillColor(BLACK)
    for i, line in enumerate(organisation.lines):
        font = BOLD if i == 0 else REGULAR
        canvas.setFont(font, 10 if i == 0 else 9)
        canvas.drawString(LEFT, y, fit(line, font, 10, 100 * mm))
        y -= 4.4 * mm
    canvas.setFont(BOLD, 10)
    canvas.drawRightString(RIGHT, TOP - 7 * mm, pdf_text(f"N° {number}"))
    canvas.setFont(REGULAR, 9)
    canvas.drawRightString(RIGHT, TOP - 11.4 * mm, pdf_text(f"Date : {date_fr(when)}"))
    canvas.drawRightString(RIGHT, TOP - 15.8 * mm, pdf_text(f"Élève (référence) : {pupil_reference}"))

    y = min(y, TOP - 20 * mm) - 10 * mm
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 22)
    canvas.drawString(LEFT, y, pdf_text(title))
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 9.5)
    canvas.drawString(LEFT, y - 6 * mm, pdf_text(subtitle))
    canvas.setFillColor(BLACK)
    return y - 15 * mm


def _continuation(canvas: Canvas, doc: ReceiptDocument, title: str) -> float:
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 14)
    canvas.drawString(LEFT, TOP - 6 * mm, pdf_text(title))
    canvas.setFillColor(BLACK)
    canvas.drawRightString(RIGHT, TOP - 6 * mm, pdf_text(f"N° {doc.number}"))
    return TOP - 16 * mm


def _paragraph_height(text: str, size: float) -> float:
    return len(wrap(text, REGULAR, size, WIDTH - 8 * mm)) * size * 1.4 + 7 * mm


def _paragraph(canvas: Canvas, text: str, y: float, *, size: float, framed: bool = False) -> float:
    """Draw wrapped text from baseline ``y`` (optionally on a tinted band); return the next baseline."""
    inset = 4 * mm if framed else 0
    lines = wrap(text, REGULAR, size, WIDTH - 2 * inset)
    leading = size * 1.4
    last = y - (len(lines) - 1) * leading
    if framed:
        bottom = last - size * 0.3 - 2 * mm
        height = y + size + 2 * mm - bottom
        canvas.setFillColor(GREY_LIGHT)
        canvas.rect(LEFT, bottom, WIDTH, height, stroke=0, fill=1)
        canvas.setFillColor(BLUE)
        canvas.rect(LEFT, bottom, 1 * mm, height, stroke=0, fill=1)
        canvas.setFillColor(BLACK)
        last -= 2 * mm
    text_object = canvas.beginText(LEFT + inset, y)
    text_object.setFont(BOLD if text.endswith(" :") else REGULAR, size, leading)
    for line in lines:
        text_object.textLine(line)
    canvas.drawText(text_object)
    return last - leading - 2.5 * mm


def _table_head(canvas: Canvas, y: float) -> float:
    return table_head(canvas, y, COLUMNS)


def table_head(canvas: Canvas, y: float, columns: tuple) -> float:
    """The tinted header row of a devices table: (title, width, font) per column."""
    canvas.setFillColor(BLUE_LIGHT)
    canvas.rect(LEFT, y - 7 * mm, WIDTH, 7 * mm, stroke=0, fill=1)
    canvas.setFillColor(BLUE)
    canvas.setFont(BOLD, 8.5)
    x = LEFT
    for title, width, _font in columns:
        canvas.drawString(x + 1.5 * mm, y - 4.6 * mm, pdf_text(title, BOLD))
        x += width
    canvas.setFillColor(BLACK)
    return y - 7 * mm


def _row(canvas: Canvas, device: ReceiptDevice, y: float) -> float:
    y -= ROW_HEIGHT
    x = LEFT
    for text, (_title, width, font) in zip(
        (device.kind, device.model, device.serial, device.asset_tag), COLUMNS, strict=True
    ):
        canvas.setFont(font, 9)
        canvas.drawString(x + 1.5 * mm, y + 2 * mm, fit(text, font, 9, width - 3 * mm))
        x += width
    canvas.setStrokeColor(GREY_LIGHT)
    canvas.setLineWidth(0.5)
    canvas.line(LEFT, y, RIGHT, y)
    return y


def _signature(canvas: Canvas, doc: ReceiptDocument, y: float) -> None:
    """The guardian's signature (or an empty box to sign by hand), its fingerprint, then the data note."""
    width, height = 90 * mm, 32 * mm
    label_caps(canvas, "Signature de la personne qui reçoit le matériel", LEFT, y)
    canvas.setFont(REGULAR, 9)
    canvas.drawString(
        LEFT + width + 6 * mm, y - 6 * mm, fit(doc.receiver_name, REGULAR, 9, WIDTH - width - 6 * mm)
    )
    canvas.setFillColor(GREY)
    canvas.drawString(
        LEFT + width + 6 * mm, y - 10.5 * mm, fit(doc.relation, REGULAR, 9, WIDTH - width - 6 * mm)
    )
    canvas.drawString(LEFT + width + 6 * mm, y - 15 * mm, pdf_text(f"le {datetime_fr(doc.handed_over_at)}"))
    canvas.setFillColor(BLACK)
    box_y = y - 3 * mm - height
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.7)
    canvas.roundRect(LEFT, box_y, width, height, 1.5 * mm, stroke=1, fill=0)
    if doc.signature_png is not None:
        _draw_signature(
            canvas, doc.signature_png, LEFT + 2 * mm, box_y + 2 * mm, width - 4 * mm, height - 4 * mm
        )

    y = box_y - 5 * mm
    caption = "Empreinte SHA-256 de la signature :"
    canvas.setFont(REGULAR, 8)
    canvas.drawString(LEFT, y, caption)
    canvas.setFont(MONO, 8)
    indent = stringWidth(caption, REGULAR, 8) + 2 * mm
    canvas.drawString(LEFT + indent, y, fit(doc.signature_sha256 or "—", MONO, 8, WIDTH - indent))

    y -= 8 * mm
    canvas.setFillColor(GREY)
    text_object = canvas.beginText(LEFT, y)
    text_object.setFont(REGULAR, 8, 10.5)
    for line in wrap(f"Protection des données : {DATA_NOTE}", REGULAR, 8, WIDTH):
        text_object.textLine(line)
    canvas.drawText(text_object)
    canvas.setFillColor(BLACK)


def _draw_signature(canvas: Canvas, png: bytes, x: float, y: float, width: float, height: float) -> None:
    """Fit the signature image in the box, keeping its proportions; transparency is kept."""
    image = ImageReader(io.BytesIO(png))
    image_width, image_height = image.getSize()
    scale = min(width / image_width, height / image_height)
    w, h = image_width * scale, image_height * scale
    canvas.drawImage(image, x + (width - w) / 2, y + (height - h) / 2, w, h, mask="auto")


def _footer(canvas: Canvas, doc: ReceiptDocument, title: str, page: int) -> None:
    footer(canvas, f"{title} N° {doc.number} — exemplaire à conserver par la famille", page)


def footer(canvas: Canvas, text: str, page: int) -> None:
    """The line at the bottom of a family's paper, with the page number."""
    canvas.setStrokeColor(GREY_LINE)
    canvas.setLineWidth(0.4)
    canvas.line(LEFT, 14 * mm, RIGHT, 14 * mm)
    canvas.setFillColor(GREY)
    canvas.setFont(REGULAR, 7.5)
    canvas.drawString(LEFT, 10 * mm, pdf_text(text))
    canvas.drawRightString(RIGHT, 10 * mm, f"page {page}")
    canvas.setFillColor(BLACK)
