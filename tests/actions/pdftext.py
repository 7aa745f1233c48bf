"""Reads the text drawn in a reportlab PDF (its content streams) so tests can check what an invoice says."""

from __future__ import annotations

import base64
import re
import zlib

_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(raw: bytes) -> bytes:
    def sub(m: re.Match[bytes]) -> bytes:
        token = m.group(1)
        if token[:1].isdigit():
            return bytes([int(token, 8) & 0xFF])
        return _ESCAPES.get(token, token)

    return re.sub(rb"\\([0-7]{1,3}|.)", sub, raw, flags=re.S)


def _decode(data: bytes) -> str:
    # CID fonts (CJK text) are drawn as 2-byte big-endian codes of Unicode.
    if len(data) >= 2 and len(data) % 2 == 0 and data[0::2].count(0) * 2 >= len(data) // 2:
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")


def pdf_text(pdf: bytes) -> str:
    """All string operands of the page content streams, joined by newlines."""
    chunks: list[str] = []
    pattern = rb"\d+ 0 obj\s*<<((?:(?!endobj).)*?)>>\s*stream\r?\n(.*?)\r?\n?endstream"
    for match in re.finditer(pattern, pdf, re.S):
        header, data = match.group(1), match.group(2)
        if b"ASCII85Decode" in header:
            data = base64.a85decode(data.strip().removesuffix(b"~>"), adobe=False)
        if b"FlateDecode" in header:
            data = zlib.decompress(data)
        for text in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", data, re.S):
            chunks.append(_decode(_unescape(text)))
    return "\n".join(chunks)
