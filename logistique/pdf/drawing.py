"""What every printed paper shares: the canvas, the palette, French-safe text, fitting text into a width."""

from __future__ import annotations

import io
import unicodedata
from functools import lru_cache

from reportlab import rl_config
from reportlab.lib.colors import Color, HexColor
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

# Plain hex streams compress better than ASCII85 once deflated: ~18 % smaller files at the same speed.
rl_config.useA85 = 0

PAGE_WIDTH, PAGE_HEIGHT = A4

REGULAR = "Helvetica"
BOLD = "Helvetica-Bold"
MONO = "Courier"  # serials and references: 0 and O, 1 and I stay apart when someone checks by eye
MONO_BOLD = "Courier-Bold"

BLUE = HexColor("#000091")  # « bleu France » of the State's design system
BLUE_LIGHT = HexColor("#E3E3FD")
GREY = HexColor("#666666")
GREY_LINE = HexColor("#929292")
GREY_LIGHT = HexColor("#F6F6F6")
BLACK = Color(0, 0, 0)

# Characters the built-in fonts (WinAnsi) lack, and what prints instead.
_REPLACEMENTS = {
    "\u202f": "\u00a0",  # narrow no-break space (French thousands, « % ») -> no-break space
    "\u2009": " ",
    "\u2007": "\u00a0",
    "\u2010": "-",
    "\u2011": "-",
    "\u2212": "-",
}


def pdf_text(text: str) -> str:
    """Return ``text`` printable in Helvetica: WinAnsi has « É », « œ », « € »; others are mapped."""
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for char in text:
        char = _REPLACEMENTS.get(char, char)
        try:
            char.encode("cp1252")
        except UnicodeEncodeError:
            # Strip accents WinAnsi lacks (« ő » -> « o »); anything else prints « ? » rather than a box.
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            try:
                base.encode("cp1252")
                char = base or "?"
            except UnicodeEncodeError:
                char = "?"
        out.append(char)
    return "".join(out)


@lru_cache(maxsize=4096)  # pure and bounded: models, kinds and captions repeat on every row and page
def fit(text: str, font: str, size: float, width: float) -> str:
    """Return ``text`` (made printable) cut with « … » so that it holds in ``width`` points."""
    text = pdf_text(text)
    if stringWidth(text, font, size) <= width:
        return text
    ellipsis_width = stringWidth("…", font, size)
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if stringWidth(text[:middle], font, size) + ellipsis_width <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Break ``text`` into lines of at most ``width`` points, on spaces (a word too long is cut)."""
    lines: list[str] = []
    current = ""
    for word in pdf_text(text).split(" "):
        candidate = f"{current} {word}" if current else word
        if stringWidth(candidate, font, size) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word if stringWidth(word, font, size) <= width else fit(word, font, size, width)
    if current:
        lines.append(current)
    return lines


def new_canvas(title: str, subject: str) -> tuple[Canvas, io.BytesIO]:
    """An A4 canvas writing into memory; ``invariant`` makes the same input give the same bytes."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1, lang="fr-FR")
    canvas.setTitle(pdf_text(title))
    canvas.setSubject(pdf_text(subject))
    canvas.setAuthor("logistique — continuité éducative")
    canvas.setCreator("logistique")
    return canvas, buffer


def label_caps(canvas: Canvas, text: str, x: float, y: float, size: float = 7) -> None:
    """A small grey caption above a block (« DESTINATAIRE »)."""
    canvas.setFillColor(GREY)
    canvas.setFont(BOLD, size)
    canvas.drawString(x, y, pdf_text(text.upper()))
    canvas.setFillColor(BLACK)
