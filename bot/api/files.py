"""Files the bot links to: invoice PDFs, addressed by unguessable tokens."""

from __future__ import annotations

import mimetypes
import re

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse

router = APIRouter(tags=["files"])


@router.get("/files/invoices/{name}")
async def invoice(name: str, request: Request) -> Response:
    invoices = request.app.state.runtime.invoices
    pdf = invoices.read(name) if invoices is not None else None
    if pdf is None:
        raise HTTPException(404, "no such invoice (the link may be mistyped)")
    return Response(pdf, media_type="application/pdf", headers={"content-disposition": f'inline; filename="{name}"'})


@router.get("/files/uploads/{token}/{name}")
async def upload(token: str, name: str, request: Request) -> Response:
    """Files agents attached to replies; the unguessable token is the key."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token) or not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", name):
        raise HTTPException(404, "no such file")
    path = request.app.state.settings.var_dir / "uploads" / token / name
    if not path.is_file():
        raise HTTPException(404, "no such file (the link may be mistyped)")
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"x-content-type-options": "nosniff"})
