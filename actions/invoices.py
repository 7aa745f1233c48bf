"""PDF invoices with the seller's VAT data (reportlab), and the store of issued files the web app serves."""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from babel.dates import format_date
from babel.numbers import format_currency
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from actions.seller import SellerProfile
from actions.store import Order

URL_PREFIX = "/files/invoices/"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _q(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal("1") if currency == "JPY" else Decimal("0.01"), rounding=ROUND_HALF_UP)


def _font_for(texts: list[str]) -> str | None:
    """A built-in CID font when the text needs glyphs beyond Helvetica's (e.g. a Japanese address)."""
    joined = "".join(texts)
    if all(ord(c) < 0x100 for c in joined):
        return None
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    kana = any(0x3040 <= ord(c) <= 0x30FF for c in joined)
    hangul = any(0xAC00 <= ord(c) <= 0xD7AF for c in joined)
    # Adobe's CJK fonts ship with reportlab as metrics only; PDF viewers supply the glyphs.
    name = "HeiseiKakuGo-W5" if kana else "HYSMyeongJo-Medium" if hangul else "STSong-Light"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(name))
    return name


def render_invoice_pdf(order: Order, seller: SellerProfile) -> bytes:
    """An invoice for `order`: seller and VAT registration, buyer, lines, tax included in the prices."""
    # Invoices are issued in English (the legal language of the seller's records); the bot's message
    # that carries the link is in the shopper's language.
    locale = "en_GB"
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=f"Invoice {seller.invoice_prefix}{order.number}",
                            author=seller.legal_name, leftMargin=18 * mm, rightMargin=18 * mm)
    styles = getSampleStyleSheet()
    font = _font_for([order.shipping_address.one_line(), *(i.name for i in order.items), *seller.address])
    if font:
        for style in ("Title", "Normal"):
            styles[style].fontName = font
    country = order.shipping_address.country
    rate = seller.tax_rate_for(country)
    money = lambda v: format_currency(v, order.currency, locale=locale)  # noqa: E731
    story = [
        Paragraph(f"Invoice {seller.invoice_prefix}{order.number}", styles["Title"]),
        Paragraph(f"<b>{seller.legal_name}</b> ({seller.name})", styles["Normal"]),
        *[Paragraph(line, styles["Normal"]) for line in seller.address],
        Paragraph(f"VAT registration: {seller.vat_number_for(country)}", styles["Normal"]),
    ]
    if seller.company_registration:
        story.append(Paragraph(f"Company registration: {seller.company_registration}", styles["Normal"]))
    story += [
        Spacer(1, 6 * mm),
        Paragraph(f"<b>Bill to:</b> {order.shipping_address.one_line()}", styles["Normal"]),
        Paragraph(f"Order: {order.number} &nbsp; Order date: "
                  f"{format_date(order.created_at.date(), format='long', locale=locale)}", styles["Normal"]),
        Spacer(1, 6 * mm),
    ]
    rows: list[list[str]] = [["SKU", "Item", "Qty", "Unit price", "Amount"]]
    for item in order.items:
        rows.append([item.sku, item.name, str(item.quantity), money(item.unit_price), money(item.line_total)])
    gross = order.total
    net = _q(gross / (1 + rate / 100), order.currency)
    rows.append(["", "", "", "Net", money(net)])
    rows.append(["", "", "", f"VAT {rate}%", money(gross - net)])
    rows.append(["", "", "", "Total", money(gross)])
    table = Table(rows, colWidths=[38 * mm, 62 * mm, 12 * mm, 30 * mm, 30 * mm])
    table.setStyle(TableStyle([
        *([("FONTNAME", (0, 0), (-1, -1), font)] if font else []),
        ("FONTNAME", (0, 0), (-1, 0), font or "Helvetica-Bold"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
        ("LINEABOVE", (3, -3), (-1, -3), 0.5, colors.black),
        ("FONTNAME", (3, -1), (-1, -1), font or "Helvetica-Bold"),
    ]))
    story += [table, Spacer(1, 8 * mm),
              Paragraph(f"Prices include VAT at {rate}% where applicable. Questions: {seller.email}",
                        styles["Normal"])]
    doc.build(story)
    return buffer.getvalue()


@dataclass(frozen=True)
class IssuedInvoice:
    token: str
    url_path: str  # e.g. /files/invoices/<token>.pdf; the web app serves it from the InvoiceStore


class InvoiceStore:
    """Issued invoice PDFs in a directory, addressed by unguessable tokens (the link is the key).

    A directory (not memory) so that a remote action server and the web app can share it.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def save(self, pdf: bytes) -> IssuedInvoice:
        if not pdf.startswith(b"%PDF-"):
            raise ValueError("not a PDF document")
        token = secrets.token_urlsafe(18)
        path = self.directory / f"{token}.pdf"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pdf)
        tmp.replace(path)  # readers never see half a file
        return IssuedInvoice(token=token, url_path=f"{URL_PREFIX}{token}.pdf")

    def read(self, token: str) -> bytes | None:
        """The PDF for a token (or `<token>.pdf`); None for unknown or malformed tokens."""
        token = token.removesuffix(".pdf")
        if not _TOKEN_RE.match(token):
            return None
        path = self.directory / f"{token}.pdf"
        return path.read_bytes() if path.is_file() else None
