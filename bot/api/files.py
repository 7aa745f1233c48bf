"""Files the bot links to: invoice PDFs, addressed by unguessable tokens."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

router = APIRouter(tags=["files"])


@router.get("/files/invoices/{name}")
async def invoice(name: str, request: Request) -> Response:
    invoices = request.app.state.runtime.invoices
    pdf = invoices.read(name) if invoices is not None else None
    if pdf is None:
        raise HTTPException(404, "no such invoice (the link may be mistyped)")
    return Response(pdf, media_type="application/pdf", headers={"content-disposition": f'inline; filename="{name}"'})
