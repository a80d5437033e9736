"""The printed papers, read back as a person would: rendered at 150 dpi, codes scanned, text extracted.

Pure: no app, no database. pypdfium2 renders and extracts text, zxing-cpp reads the QR and Code 128 codes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from datetime import UTC, date, datetime

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import qrcode
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.units import mm

from logistique.pdf import labels_pdf, receipt_pdf, slip_pdf, slips_pdf
from logistique.pdf.documents import Address, Label, ReceiptDevice, ReceiptDocument, SlipDocument, SlipLine
from logistique.pdf.drawing import new_canvas, pdf_text
from logistique.pdf.labels import LABEL_HEIGHT, LABEL_WIDTH, label_origin
from logistique.pdf.qr import MASK_PATTERN, dark_runs, draw_matrix, draw_qr, qr_matrix

BASE = "https://logistique.prefecture-hdf.gouv.fr"
DPI = 150
MODELS = [
    ("Tablette", "Lenovo Tab M10 HD (2e génération)", "R9JA0K3X7Q"),
    ("Ordinateur portable", "Dell Latitude E7470 reconditionné", "5CG7301XYZ"),
    ("Clé 4G / routeur", "Huawei E5576-320", "86753091234567"),
]
ARTICLE_1880 = (
    "L'emprunteur est tenu de veiller raisonnablement à la garde et à la conservation de la chose prêtée. "
    "Il ne peut s'en servir qu'à l'usage déterminé par sa nature ou par la convention ; le tout à peine de "
    "dommages-intérêts, s'il y a lieu."
)


def make_slip(lines: int = 10, n: int = 0) -> SlipDocument:
    return SlipDocument(
        number=f"BL-59-2020-{123 + n:06d}",
        qr_url=f"{BASE}/s/1K2.Q7M9X4P7Q{n:03d}",
        sender=Address(
            "Entrepôt Emmaüs Connect Lille", "12 rue de l'Œuvre", "59000", "Lille", "03 20 00 00 00"
        ),
        destination=Address("Association Horizon Roubaix", "5 place de la Liberté", "59100", "Roubaix"),
        issued_at=datetime(2020, 4, 6, 12, 5, tzinfo=UTC),
        status_label="Émis",
        lines=[
            SlipLine(
                kind=MODELS[k % 3][0],
                model=MODELS[k % 3][1],
                serial=f"{MODELS[k % 3][2]}{n}{k:03d}",
                asset_tag=f"EC-59-{n:02d}{k:04d}",
                pupil_reference=f"59-E{n:02d}{k:03d}",
            )
            for k in range(lines)
        ],
        lot_references=["LOT-2020-0007", "LOT-2020-0012"],
    )


def signature_png() -> bytes:
    image = Image.new("RGBA", (300, 100), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(20, 70), (90, 20), (150, 80), (280, 30)], fill=(20, 20, 60, 255), width=5)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def transparent_pixel_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (0, 0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def make_receipt(mode: str, *, png: bytes | None = None, loan_until: date | None = None) -> ReceiptDocument:
    return ReceiptDocument(
        number="RM-59-2020-000045",
        mode=mode,
        pupil_reference="59-E04217",
        receiver_name="Fatima Benali",
        relation="mère",
        organisation=Address("Association Horizon Roubaix", "5 place de la Liberté", "59100", "Roubaix"),
        handed_over_at=datetime(2020, 4, 8, 9, 30, tzinfo=UTC),
        devices=[
            ReceiptDevice("Tablette", "Lenovo Tab M10 HD", "R9JA0K3X7Q", "EC-59-000001"),
            ReceiptDevice("Clé 4G / routeur", "Huawei E5576-320", "867530912345678", "EC-59-000002"),
        ],
        signature_png=png,
        signature_sha256=hashlib.sha256(png or b"").hexdigest(),
        loan_until=loan_until,
    )


def pages_text(pdf: bytes) -> list[str]:
    """Each page's text, whitespace collapsed (line breaks and no-break spaces become single spaces)."""
    document = pdfium.PdfDocument(pdf)
    try:
        return [" ".join(page.get_textpage().get_text_range().split()) for page in document]
    finally:
        document.close()


def render(pdf: bytes, page: int = 0, dpi: int = DPI) -> Image.Image:
    document = pdfium.PdfDocument(pdf)
    try:
        return document[page].render(scale=dpi / 72).to_pil()
    finally:
        document.close()


def page_count(pdf: bytes) -> int:
    document = pdfium.PdfDocument(pdf)
    try:
        return len(document)
    finally:
        document.close()


def decode(image: Image.Image, fmt: zxingcpp.BarcodeFormat) -> list[str]:
    return [code.text for code in zxingcpp.read_barcodes(image, formats=fmt)]


def test_reportlab_uses_its_c_accelerator():
    """Without rl-accel reportlab silently falls back to pure Python, 1.5–1.8× slower to build a page."""
    from reportlab.lib import rl_accel

    assert rl_accel.fp_str.__module__ == "_rl_accel"


def test_slip_qr_scans_to_its_url_at_150_dpi():
    doc = make_slip()
    assert decode(render(slip_pdf(doc)), zxingcpp.BarcodeFormat.QRCode) == [doc.qr_url]


def test_slip_qr_is_printed_at_least_35_mm_wide():
    doc = make_slip()
    image = render(slip_pdf(doc))
    (code,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    width_px = code.position.top_right.x - code.position.top_left.x
    assert width_px / DPI * 25.4 >= 35


def test_slip_text_has_number_serials_references_totals_and_boxes():
    doc = make_slip(lines=10)
    (text,) = pages_text(slip_pdf(doc))
    assert "Bon de livraison" in text
    assert doc.number in text
    for line in doc.lines:
        assert line.serial in text
        assert line.asset_tag in text
        assert line.pupil_reference in text
    assert "Total : 10 équipements" in text
    assert "Tablette : 4" in text and "Ordinateur portable : 3" in text and "Clé 4G / routeur : 3" in text
    assert "Pour l'entrepôt : nom, date, signature" in text
    assert "Pour le destinataire : nom, date, signature" in text
    assert "Réserves" in text
    assert "Scannez pour préparer ou réceptionner ce bordereau" in text
    assert "06/04/2020 à 14:05" in text  # issued at 12:05 UTC, printed in Paris time
    assert "LOT-2020-0007" in text and "Entrepôt Emmaüs Connect Lille" in text and "12 rue de l'Œuvre" in text
    assert "page 1/1" in text


def test_french_characters_print_without_missing_glyphs():
    doc = make_slip(lines=1)
    line = SlipLine("Tablette", "Cœur 10\u202fpouces — 129\u00a0€ É", "SN1", "EC-1", "59-E1")
    (text,) = pages_text(slip_pdf(dataclasses.replace(doc, lines=[line])))
    assert "Cœur 10 pouces — 129 € É" in text
    assert pdf_text("12\u202f345\u202f€") == "12\u202f345\u202f€"  # the embedded font has the narrow space


# Names of families the operation serves: Polish, Turkish, Vietnamese, Romanian, and mixed.
NAMES = ["Łukasz Wiśniewski", "Şükrü Yılmaz", "Nguyễn Thị Hương", "Ștefan Țurcanu", "Zoë N'Diaye-Ødegård"]


def embedded_fonts(pdf: bytes) -> list[str]:
    """The base names of the fonts a PDF embeds (a subset is named ``ABCDEF+Name``)."""
    import re

    return sorted(set(re.findall(rb"/FontName /([A-Z]{6}\+[\w-]+)", pdf)), key=bytes)


@pytest.mark.parametrize("name", NAMES)
def test_every_name_prints_exactly_on_the_receipt(name):
    doc = dataclasses.replace(
        make_receipt("pret", png=signature_png()),
        receiver_name=name,
        organisation=Address(f"Association {name}", "5 place de la Liberté", "59100", "Roubaix"),
    )
    (text,) = pages_text(receipt_pdf(doc))
    assert f"Association {name}" in text
    assert text.count(name) >= 2  # the receiver and the organisation, letter for letter, no « ? »


def test_every_pdf_embeds_a_subset_of_the_unicode_font_and_prints_the_names():
    slip = make_slip(lines=2)
    slip = dataclasses.replace(
        slip,
        sender=Address(f"Entrepôt {NAMES[1]}", "1 rue", "59000", "Lille"),
        destination=Address(f"Association {NAMES[0]}", "5 place", "59100", "Roubaix"),
        lines=[dataclasses.replace(line, model=f"Modèle {NAMES[2]}") for line in slip.lines],
    )
    labels = [Label(f"{BASE}/d/EC-1", "EC-1", "SN-1", f"Tablette {NAMES[3]}")]
    receipt = dataclasses.replace(make_receipt("don", png=signature_png()), receiver_name=NAMES[4])
    documents = {
        "slip": (slip_pdf(slip), NAMES[:3]),
        "batch": (slips_pdf([slip]), NAMES[:3]),
        "labels": (labels_pdf(labels), NAMES[3:4]),
        "receipt": (receipt_pdf(receipt), NAMES[4:]),
    }
    for kind, (pdf, names) in documents.items():
        text = "\n".join(pages_text(pdf))
        for name in names:
            assert name in text, (kind, name)
        fonts = embedded_fonts(pdf)
        assert fonts and all(b"+DejaVuSans" in font for font in fonts), (kind, fonts)
        assert b"/FontFile2" in pdf, kind  # TrueType program embedded: readers need no font of their own


def test_a_letter_the_font_lacks_prints_a_question_mark_not_a_box():
    assert pdf_text("Lê 中") == "Lê ?"
    assert pdf_text("Nguyễn", "DejaVuSansMono") == "Nguyen"  # the monospace face lacks « ễ »: its base letter


def test_long_slip_spans_pages_with_header_number_and_page_count_on_each():
    doc = make_slip(lines=40)
    pdf = slip_pdf(doc)
    texts = pages_text(pdf)
    assert len(texts) >= 2
    for i, text in enumerate(texts, start=1):
        assert doc.number in text
        assert "Bon de livraison" in text
        assert f"page {i}/{len(texts)}" in text
    everything = " ".join(texts)
    for line in doc.lines:
        assert everything.count(line.serial) == 1
    assert "Total : 40 équipements" in texts[-1]
    assert "Pour le destinataire : nom, date, signature" in texts[-1]
    assert "Pour le destinataire" not in texts[0]
    assert decode(render(pdf, 0), zxingcpp.BarcodeFormat.QRCode) == [doc.qr_url]


@pytest.mark.parametrize("lines", [0, 1, 17, 18, 29, 30, 31, 68, 69, 100])
def test_every_row_printed_once_whatever_the_length(lines):
    doc = make_slip(lines=lines)
    texts = pages_text(slip_pdf(doc))
    everything = " ".join(texts)
    assert [everything.count(line.serial) for line in doc.lines] == [1] * lines
    assert f"Total : {lines} équipement" in texts[-1]
    assert all(f"/{len(texts)}" in text for text in texts)


def test_batch_of_three_slips_each_page_scans_to_its_own_slip():
    docs = [make_slip(lines=5, n=n) for n in range(3)]
    done: list[int] = []
    pdf = slips_pdf(docs, progress=done.append)
    assert done == [1, 2, 3]
    texts = pages_text(pdf)
    assert len(texts) >= 3
    for page, doc in enumerate(docs):
        assert decode(render(pdf, page), zxingcpp.BarcodeFormat.QRCode) == [doc.qr_url]
        assert doc.number in texts[page]


def test_same_slip_gives_same_bytes():
    assert slip_pdf(make_slip()) == slip_pdf(make_slip())


def test_empty_batch_is_refused():
    with pytest.raises(ValueError, match="Aucun bordereau"):
        slips_pdf([])


def test_label_sheet_each_qr_and_code128_scan_to_their_label():
    labels = [
        Label(
            url=f"{BASE}/d/EC-59-{k:06d}",
            asset_tag=f"EC-59-{k:06d}",
            serial=["R9JA0K3X7Q", "5CG7301XYZ", "867530912345678", "DMPXK2L3Q1GH"][k % 4] + str(k),
            model=MODELS[k % 3][1],
        )
        for k in range(30)
    ]
    pdf = labels_pdf(labels)
    assert page_count(pdf) == 2
    texts = pages_text(pdf)
    scale = DPI / 72
    for sheet in range(2):
        image = render(pdf, sheet)
        for slot, label in enumerate(labels[sheet * 24 : (sheet + 1) * 24]):
            x, y = label_origin(slot)
            box = (
                x * scale,
                image.height - (y + LABEL_HEIGHT) * scale,
                (x + LABEL_WIDTH) * scale,
                image.height - y * scale,
            )
            crop = image.crop(tuple(round(v) for v in box))
            assert decode(crop, zxingcpp.BarcodeFormat.QRCode) == [label.url]
            assert decode(crop, zxingcpp.BarcodeFormat.Code128) == [label.serial]
            assert label.asset_tag in texts[sheet] and label.serial in texts[sheet]


def test_receipt_for_a_gift():
    png = signature_png()
    doc = make_receipt("don", png=png)
    (text,) = pages_text(receipt_pdf(doc))
    assert "Attestation de remise" in text
    assert "Convention de prêt" not in text
    assert doc.number in text and doc.pupil_reference in text
    assert "Fatima Benali" in text and "mère" in text
    assert "R9JA0K3X7Q" in text and "EC-59-000002" in text
    assert f"Empreinte SHA-256 de la signature : {hashlib.sha256(png).hexdigest()}" in text
    assert "article 1880" not in text and "veiller raisonnablement" not in text
    assert "Les données personnelles sont effacées à la clôture de l'opération" in text


def test_receipt_for_a_loan_quotes_article_1880_and_the_return_date():
    doc = make_receipt("pret", png=signature_png(), loan_until=date(2020, 7, 3))
    (text,) = pages_text(receipt_pdf(doc))
    assert "Convention de prêt" in text
    assert doc.number in text and doc.pupil_reference in text
    assert ARTICLE_1880 in text
    assert "03/07/2020" in text
    assert "Empreinte SHA-256 de la signature" in text


def test_loan_without_end_date_is_returned_on_request():
    (text,) = pages_text(receipt_pdf(make_receipt("pret", png=signature_png())))
    assert "à la demande de la structure" in text


def image_objects(pdf: bytes) -> int:
    document = pdfium.PdfDocument(pdf)
    try:
        return len(list(document[0].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])))
    finally:
        document.close()


@pytest.mark.parametrize("png", [signature_png(), transparent_pixel_png()], ids=["drawn", "transparent-1x1"])
def test_signature_png_is_embedded(png):
    assert image_objects(receipt_pdf(make_receipt("don", png=png))) == 1


def test_missing_signature_leaves_an_empty_box():
    pdf = receipt_pdf(make_receipt("don", png=None))
    assert image_objects(pdf) == 0
    assert "Empreinte SHA-256 de la signature" in pages_text(pdf)[0]


def test_unknown_receipt_mode_is_refused():
    with pytest.raises(ValueError, match="Mode de remise inconnu"):
        receipt_pdf(make_receipt("vente"))


@pytest.mark.parametrize("mask", range(8))
def test_qr_with_any_fixed_mask_decodes_at_150_dpi(mask):
    url = f"{BASE}/s/1K2.Q7M9X4P7QAB"
    canvas, buffer = new_canvas("QR", "test")
    matrix = qr_matrix(url, mask_pattern=mask)
    draw_matrix(canvas, matrix, 20 * mm, 200 * mm, 40 * mm)
    canvas.showPage()
    canvas.save()
    assert decode(render(buffer.getvalue()), zxingcpp.BarcodeFormat.QRCode) == [url]


def test_default_mask_is_fixed_and_differs_from_the_search_only_by_mask():
    url = f"{BASE}/s/1K2.Q7M9X4P7QAB"
    fixed = qr_matrix(url)
    assert fixed == qr_matrix(url, mask_pattern=MASK_PATTERN)
    searched = qr_matrix(url, mask_pattern=None)
    assert len(fixed) == len(searched) == 33  # version 4: a short token keeps the code small
    top_left_finder = [row[:7] for row in fixed[:7]]
    assert top_left_finder == [row[:7] for row in searched[:7]]
    assert all(top_left_finder[0]) and all(top_left_finder[6]) and not any(fixed[1][1:6])


@pytest.mark.parametrize("length", [1, 17, 60, 120, 180, 181, 213, 214, 400])
def test_qr_matrix_is_the_code_qrcode_itself_makes(length):
    """Our arithmetic choice of version gives the very code of the library's best fit, whatever the length."""
    url = (f"{BASE}/s/" + "1K2.Q7M9X4P7QABxyz" * 30)[:length]
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0, mask_pattern=MASK_PATTERN)
    code.add_data(url, optimize=0)
    code.make(fit=True)
    assert qr_matrix(url) == code.modules


def test_draw_qr_decodes_when_drawn_alone():
    url = f"{BASE}/d/EC-59-000123"
    canvas, buffer = new_canvas("QR", "test")
    draw_qr(canvas, url, 50 * mm, 150 * mm, 30 * mm)
    canvas.showPage()
    canvas.save()
    assert decode(render(buffer.getvalue()), zxingcpp.BarcodeFormat.QRCode) == [url]


@given(st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=8))
def test_dark_runs_cover_exactly_the_dark_modules_once(matrix):
    covered = [(r, c) for r, start, length in dark_runs(matrix) for c in range(start, start + length)]
    dark = [(r, c) for r, line in enumerate(matrix) for c, cell in enumerate(line) if cell]
    assert covered == dark
    for r, start, length in dark_runs(matrix):  # maximal runs: light (or the edge) on both sides
        assert start == 0 or not matrix[r][start - 1]
        assert start + length == 6 or not matrix[r][start + length]
