"""What every printed paper shares: the canvas, the palette, the embedded Unicode fonts, fitting text."""

from __future__ import annotations

import io
import unicodedata
from functools import lru_cache
from pathlib import Path

from reportlab import rl_config
from reportlab.lib.colors import Color, HexColor
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import registerFont, stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

# Plain hex streams compress better than ASCII85 once deflated: ~18 % smaller files at the same speed.
rl_config.useA85 = 0

PAGE_WIDTH, PAGE_HEIGHT = A4

# DejaVu (vendored from npm by scripts/vendor, licence beside the files) rather than the PDF's built-in
# Helvetica, whose WinAnsi encoding prints « Łukasz » as « ?ukasz »: families' names are Polish, Turkish,
# Romanian, Vietnamese… reportlab embeds only the glyphs a document uses (a subset), so a slip stays small.
REGULAR = "DejaVuSansCondensed"  # the condensed face sets text as wide as Helvetica did: layouts hold
BOLD = "DejaVuSansCondensed-Bold"
MONO = "DejaVuSansMono"  # serials and references: 0 and O, 1 and I stay apart when someone checks by eye
MONO_BOLD = "DejaVuSansMono-Bold"
FONT_DIR = Path(__file__).resolve().parent / "fonts"
for _name in (REGULAR, BOLD, MONO, MONO_BOLD):
    registerFont(TTFont(_name, str(FONT_DIR / f"{_name}.ttf")))

BLUE = HexColor("#000091")  # « bleu France » of the State's design system
BLUE_LIGHT = HexColor("#E3E3FD")
GREY = HexColor("#666666")
GREY_LINE = HexColor("#929292")
GREY_LIGHT = HexColor("#F6F6F6")
BLACK = Color(0, 0, 0)


@lru_cache(maxsize=8)
def _covered(font: str) -> frozenset[int]:
    """The code points that ``font`` has a glyph for."""
    from reportlab.pdfbase.pdfmetrics import getFont

    return frozenset(getFont(font).face.charToGlyph)


def pdf_text(text: str, font: str = REGULAR) -> str:
    """Return ``text`` as ``font`` can print it: every letter it has (all Latin scripts, Vietnamese included
    in DejaVu Sans) unchanged; a letter it lacks loses its accent if that helps, else prints « ? »."""
    covered = _covered(font)
    if all(ord(char) in covered for char in text):
        return text
    out = []
    for char in text:
        if ord(char) not in covered:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            char = base if base and all(ord(c) in covered for c in base) else "?"
        out.append(char)
    return "".join(out)


@lru_cache(maxsize=4096)  # pure and bounded: models, kinds and captions repeat on every row and page
def fit(text: str, font: str, size: float, width: float) -> str:
    """Return ``text`` (made printable) cut with « … » so that it holds in ``width`` points."""
    text = pdf_text(text, font)
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
    for word in pdf_text(text, font).split(" "):
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
