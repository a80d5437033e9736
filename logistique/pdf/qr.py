"""QR codes for the printed papers: encoded with ``qrcode``, drawn by reportlab as one vector path.

The mask pattern is fixed: choosing the "best" of the eight masks is what the ``qrcode`` library spends
~80 % of its time on, and any mask gives a valid code. Mask 2 (every third column) had the lowest average
penalty score for our ``<base>/s/<token>`` URLs, so that is the one printed.
"""

from __future__ import annotations

import re

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from reportlab.pdfgen.canvas import Canvas

MASK_PATTERN = 2
QUIET_ZONE = 4  # modules of white around the symbol, as the standard asks
_DARK_RUN = re.compile(b"\x01+")


def qr_matrix(url: str, *, mask_pattern: int | None = MASK_PATTERN) -> list[list[bool]]:
    """Encode ``url`` (error correction M) and return its modules, dark is True, without the quiet zone.

    ``mask_pattern=None`` lets ``qrcode`` try the eight masks and keep the best (the slow, default way).
    """
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0, mask_pattern=mask_pattern)
    code.add_data(url, optimize=0)  # one byte-mode segment: a URL gains nothing from splitting
    code.best_fit()  # once: make(fit=True) would compute it twice
    code.make(fit=False)
    return code.modules  # type: ignore[return-value]  # a fresh list per call, every module set to a bool


def dark_rectangles(matrix: list[list[bool]]) -> list[tuple[int, int, int, int]]:
    """Cover the dark modules with rectangles ``(column, row, width, height)``, top row first.

    Each row is cut into horizontal runs of dark modules; a run repeated exactly on the following rows is
    merged into one taller rectangle, so the path has far fewer operators than modules.
    """
    rectangles: list[tuple[int, int, int, int]] = []
    open_runs: dict[tuple[int, int], int] = {}  # (start, end) -> first row
    for r, row in enumerate(matrix):
        runs = {match.span() for match in _DARK_RUN.finditer(bytes(row))}  # bools are 0 and 1: C-speed scan
        for run in [run for run in open_runs if run not in runs]:
            top = open_runs.pop(run)
            rectangles.append((run[0], top, run[1] - run[0], r - top))
        for run in runs:
            open_runs.setdefault(run, r)
    for (start, end), top in open_runs.items():
        rectangles.append((start, top, end - start, len(matrix) - top))
    return rectangles


def draw_matrix(canvas: Canvas, matrix: list[list[bool]], x: float, y: float, size: float) -> float:
    """Draw ``matrix`` with its quiet zone as a ``size`` square whose lower-left corner is ``(x, y)``.

    Sizes are reportlab units (points): pass ``40 * mm``. Returns the module size.
    """
    module = size / (len(matrix) + 2 * QUIET_ZONE)
    canvas.saveState()
    canvas.setFillColorRGB(1, 1, 1)
    canvas.rect(x, y, size, size, stroke=0, fill=1)  # the quiet zone stays white even over a tinted box
    canvas.setFillColorRGB(0, 0, 0)
    # One module is one unit, rows go down: every rectangle is four small integers, written as one path
    # (« re » operators, then « f » to fill) — short to format and small in the file.
    canvas.transform(module, 0, 0, -module, x + QUIET_ZONE * module, y + size - QUIET_ZONE * module)
    canvas.addLiteral(" ".join([f"{c} {r} {w} {h} re" for c, r, w, h in dark_rectangles(matrix)]) + " f")
    canvas.restoreState()
    return module


def draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> float:
    """Draw the QR code of ``url``, quiet zone included, in a ``size`` square at ``(x, y)`` (points)."""
    return draw_matrix(canvas, qr_matrix(url), x, y, size)
