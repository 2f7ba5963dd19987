from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.background import BackgroundTask

from core import jobs
from core.auth import AUTH_ERRORS, CurrentUser
from core.storage import MediaNotFound, StorageUnavailable
from core.web_errors import error_responses
from gateway.deps import GatewayDep

router = APIRouter(tags=["media"])


@router.get(
    "/media/{job_id}/{index}",
    summary="Download one generated file (or a redirect to a presigned S3 URL)",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}}, "description": "The file"},
        307: {"description": "Redirect to a short-lived presigned URL"},
        **error_responses(
            (*AUTH_ERRORS, 422),
            {
                404: "No such job or file for this caller",
                410: "The file expired (GATEWAY_MEDIA_TTL_SECONDS) and was deleted",
                503: "Database or storage unavailable",
            },
        ),
    },
)
async def get_media(
    job_id: uuid.UUID,
    index: Annotated[int, Path(ge=0, le=99)],
    user: CurrentUser,
    gateway: GatewayDep,
) -> Response:
    async with gateway.db.session() as session:  # released before a long download
        media = await jobs.media_file(session, job_id, user.id, index)
    if media is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No file {index} for job {job_id}")
    if media.expired:
        raise HTTPException(
            status.HTTP_410_GONE, detail=f"File {index} of job {job_id} expired and was deleted"
        )
    settings, storage = gateway.settings, gateway.storage
    try:
        if settings.gateway_media_redirect:
            url = await storage.presigned_url(media.storage_key, settings.s3_presign_expiry_seconds)
            if url is not None:
                return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
        stream = await storage.open_stream(media.storage_key)
    except MediaNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"File {index} of job {job_id} is missing"
        ) from None
    except StorageUnavailable:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="Storage is unavailable; try again shortly"
        ) from None
    return StreamingResponse(
        stream.chunks,
        background=BackgroundTask(stream.aclose),  # release the connection on early disconnect
        media_type=media.content_type,
        headers={
            "Content-Length": str(stream.size),
            "ETag": f'"{media.sha256}"',
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )
