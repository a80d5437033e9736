"""Everything reportlab draws: delivery slips, device labels, handover receipts.

Each builder takes the plain documents of :mod:`logistique.pdf.documents` and returns the PDF as bytes.
"""

from logistique.pdf.labels import labels_pdf
from logistique.pdf.receipt import receipt_pdf
from logistique.pdf.slip import slip_pdf, slips_pdf

__all__ = ["labels_pdf", "receipt_pdf", "slip_pdf", "slips_pdf"]
