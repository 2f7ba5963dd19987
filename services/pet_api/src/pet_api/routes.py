"""HTTP routes for /pets: validation and status codes here, persistence in pet_api.pets."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BeforeValidator

from core.auth import AUTH_ERRORS, CurrentUser
from core.pagination import InvalidCursor
from core.schemas.pets import (
    PET_NAME_MAX,
    PetCreate,
    PetPage,
    PetPublic,
    PetType,
    PetUpdate,
)
from core.schemas.text import SEARCH_TERM
from core.web import SessionDep, model_response
from core.web_errors import error_responses, invalid
from pet_api import pets
from pet_api.deps import PetBatchesDep, ReadAccess

router = APIRouter(prefix="/pets", tags=["pets"])


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


PetTypeFilter = Annotated[
    PetType | None,
    BeforeValidator(_lower),
    Query(description="Only pets of this type: " + ", ".join(PetType)),
]
NameFilter = Annotated[
    Annotated[str, SEARCH_TERM] | None,
    Query(
        min_length=1,
        max_length=PET_NAME_MAX,
        description="Case-insensitive substring of the name ('%' and '_' match literally)",
    ),
]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size, 1-100")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The next_cursor of the previous page; omit for the first"),
]

# Documented errors; 401/403 apply to reads only with a token or when reads are private.
NO_PET = {404: "No pet with that id"}
READ_ERRORS = (*AUTH_ERRORS, 422, 503)
WRITE_ERRORS = (*READ_ERRORS, 413)


def _not_found(pet_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Pet {pet_id} not found")


@router.post(
    "",
    response_model=PetPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Add a pet",
    responses=error_responses(WRITE_ERRORS),
)
async def create_pet(data: PetCreate, batches: PetBatchesDep, user: CurrentUser) -> Response:
    pet = await batches.create(data)
    location = router.url_path_for("get_pet", pet_id=str(pet.id))
    return model_response(pet, status.HTTP_201_CREATED, headers={"Location": location})


@router.get(
    "",
    response_model=PetPage,
    summary="List pets, oldest first, a page at a time",
    responses=error_responses(READ_ERRORS),
)
async def list_pets(
    session: SessionDep,
    user: ReadAccess,
    limit: Limit = 20,
    cursor: Cursor = None,
    pet_type: PetTypeFilter = None,
    name: NameFilter = None,
) -> Response:
    try:
        page = await pets.list_pets(
            session, limit=limit, cursor=cursor, pet_type=pet_type, name=name
        )
    except InvalidCursor as exc:
        raise invalid(("query", "cursor"), str(exc), value=cursor) from None
    return model_response(PetPage(items=page.items, next_cursor=page.next_cursor))


@router.get(
    "/{pet_id}",
    response_model=PetPublic,
    summary="Get one pet",
    responses=error_responses(READ_ERRORS, NO_PET),
)
async def get_pet(pet_id: uuid.UUID, batches: PetBatchesDep, user: ReadAccess) -> Response:
    pet = await batches.get(pet_id)
    if pet is None:
        raise _not_found(pet_id)
    return model_response(pet)


@router.put(
    "/{pet_id}",
    response_model=PetPublic,
    summary="Replace a pet (every field)",
    responses=error_responses(WRITE_ERRORS, NO_PET),
)
async def replace_pet(
    pet_id: uuid.UUID, data: PetCreate, session: SessionDep, user: CurrentUser
) -> Response:
    pet = await pets.replace_pet(session, pet_id, data)
    if pet is None:
        raise _not_found(pet_id)
    return model_response(pet)


@router.patch(
    "/{pet_id}",
    response_model=PetPublic,
    summary="Change some fields of a pet",
    responses=error_responses(WRITE_ERRORS, NO_PET),
)
async def update_pet(
    pet_id: uuid.UUID, data: PetUpdate, session: SessionDep, user: CurrentUser
) -> Response:
    pet = await pets.update_pet(session, pet_id, data)
    if pet is None:
        raise _not_found(pet_id)
    return model_response(pet)


@router.delete(
    "/{pet_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_model=None,
    summary="Delete a pet",
    responses=error_responses(READ_ERRORS, NO_PET),
)
async def delete_pet(pet_id: uuid.UUID, session: SessionDep, user: CurrentUser) -> None:
    if not await pets.delete_pet(session, pet_id):
        raise _not_found(pet_id)
