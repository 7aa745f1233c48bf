"""Reads the text drawn in a reportlab PDF (its content streams) so tests can check what an invoice says."""

from __future__ import annotations

import base64
import re
import zlib


def pdf_text(pdf: bytes) -> str:
    """All string operands of the page content streams, joined by newlines."""
    chunks: list[str] = []
    for match in re.finditer(rb"\d+ 0 obj\s*<<((?:(?!endobj).)*?)>>\s*stream\r?\n(.*?)\r?\n?endstream", pdf, re.S):
        header, data = match.group(1), match.group(2)
        if b"ASCII85Decode" in header:
            data = base64.a85decode(data.strip().removesuffix(b"~>"), adobe=False)
        if b"FlateDecode" in header:
            data = zlib.decompress(data)
        for text in re.findall(rb"\((.*?)(?<!\\)\)\s*Tj", data, re.S):
            chunks.append(text.replace(rb"\(", b"(").replace(rb"\)", b")").decode("latin-1"))
    return "\n".join(chunks)
