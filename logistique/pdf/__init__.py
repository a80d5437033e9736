"""Everything reportlab draws: delivery slips, device labels, handover receipts, the status board's summary.

Each builder takes the plain documents of :mod:`logistique.pdf.documents` and returns the PDF as bytes.
"""

from logistique.pdf.labels import labels_pdf
from logistique.pdf.receipt import receipt_pdf
from logistique.pdf.restitution import restitution_pdf
from logistique.pdf.slip import slip_pdf, slips_pdf
from logistique.pdf.summary import SummaryDocument, SummaryEnvelope, SummaryRow, summary_pdf

__all__ = [
    "SummaryDocument",
    "SummaryEnvelope",
    "SummaryRow",
    "labels_pdf",
    "receipt_pdf",
    "restitution_pdf",
    "slip_pdf",
    "slips_pdf",
    "summary_pdf",
]
