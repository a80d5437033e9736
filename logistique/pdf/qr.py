"""QR codes for the printed papers: encoded with ``qrcode``, drawn by reportlab as one vector path.

The mask pattern is fixed: choosing the "best" of the eight masks is what the ``qrcode`` library spends
~80 % of its time on, and any mask gives a valid code. Mask 2 (every third column) had the lowest average
penalty score for our ``<base>/s/<token>`` URLs, so that is the one printed.
"""

from __future__ import annotations

import re
from bisect import bisect_left

import qrcode
from qrcode import util
from qrcode.constants import ERROR_CORRECT_M
from qrcode.exceptions import DataOverflowError
from reportlab.pdfgen.canvas import Canvas

MASK_PATTERN = 2
QUIET_ZONE = 4  # modules of white around the symbol, as the standard asks
_DARK_RUN = re.compile(b"\x01+")


def qr_version(data: bytes) -> int:
    """The smallest version holding ``data`` as one byte-mode segment at level M (what ``best_fit`` finds).

    ``best_fit`` writes the whole payload into a bit buffer to count it — a fifth of the encoding time — when
    the count is plain arithmetic: mode (4 bits), length (8 bits up to version 9, 16 after), 8 bits a byte.
    """
    limits = util.BIT_LIMIT_TABLE[ERROR_CORRECT_M]
    version = bisect_left(limits, 4 + 8 + 8 * len(data), 1)
    if version >= 10:
        version = bisect_left(limits, 4 + 16 + 8 * len(data), 10)
    if version > 40:
        raise DataOverflowError(f"{len(data)} octets ne tiennent pas dans un QR code.")
    return version


def qr_matrix(url: str, *, mask_pattern: int | None = MASK_PATTERN) -> list[list[bool]]:
    """Encode ``url`` (byte mode, error correction M) and return its modules, dark is True, no quiet zone.

    ``mask_pattern=None`` lets ``qrcode`` try the eight masks and keep the best (the slow, default way).
    """
    data = url.encode()
    code = qrcode.QRCode(
        version=qr_version(data), error_correction=ERROR_CORRECT_M, border=0, mask_pattern=mask_pattern
    )
    code.add_data(util.QRData(data, mode=util.MODE_8BIT_BYTE))
    code.make(fit=False)
    return code.modules  # type: ignore[return-value]  # a fresh list per call, every module set to a bool


def dark_runs(matrix: list[list[bool]]) -> list[tuple[int, int, int]]:
    """The horizontal runs of dark modules, ``(row, first column, length)``, top row first."""
    return [
        (r, match.start(), match.end() - match.start())
        for r, row in enumerate(matrix)
        for match in _DARK_RUN.finditer(bytes(row))  # bools are bytes 0 and 1: the scan runs in C
    ]


def draw_matrix(canvas: Canvas, matrix: list[list[bool]], x: float, y: float, size: float) -> float:
    """Draw ``matrix`` with its quiet zone as a ``size`` square whose lower-left corner is ``(x, y)``.

    Sizes are reportlab units (points): pass ``40 * mm``. Returns the module size.
    """
    module = size / (len(matrix) + 2 * QUIET_ZONE)
    canvas.saveState()
    canvas.setFillColorRGB(1, 1, 1)
    canvas.rect(x, y, size, size, stroke=0, fill=1)  # the quiet zone stays white even over a tinted box
    canvas.setFillColorRGB(0, 0, 0)
    # One module is one unit and rows go down, so every run is a rectangle of small integers; all of them
    # make one path (« re » operators, then one « f » to fill): quick to write, small in the file. Vertical
    # merging would save a fifth of the rectangles but cost more time than it saves.
    canvas.transform(module, 0, 0, -module, x + QUIET_ZONE * module, y + size - QUIET_ZONE * module)
    canvas.addLiteral(" ".join([f"{c} {r} {n} 1 re" for r, c, n in dark_runs(matrix)]) + " f")
    canvas.restoreState()
    return module


def draw_qr(canvas: Canvas, url: str, x: float, y: float, size: float) -> float:
    """Draw the QR code of ``url``, quiet zone included, in a ``size`` square at ``(x, y)`` (points)."""
    return draw_matrix(canvas, qr_matrix(url), x, y, size)
