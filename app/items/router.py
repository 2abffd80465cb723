from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic_core import to_json

from app.auth.deps import ItemsReader, ItemsWriter
from app.db import MAX_ID, SessionDep
from app.errors import ErrorCode, responses
from app.items import service
from app.items.cursor import CURSORS, MAX_CURSOR_LENGTH, Cursors
from app.items.schemas import ItemCreate, ItemPage, ItemRead, ItemSort, ItemUpdate
from app.schemas import NO_NUL
from app.state import dependency

CursorsDep = Annotated[Cursors, Depends(dependency(CURSORS))]
# What a listed item shows: ItemRead's fields, read straight off the page's rows.
ITEM_FIELDS = tuple(ItemRead.model_fields)

router = APIRouter(prefix="/items", tags=["items"])

WRITE_ERRORS = (ErrorCode.NOT_AUTHENTICATED, ErrorCode.CSRF_FAILED, ErrorCode.VALIDATION_ERROR)


@router.get(
    "",
    response_model=ItemPage,
    summary="List the items the caller may see",
    responses=responses(ErrorCode.VALIDATION_ERROR),
)
async def list_items(
    session: SessionDep,
    viewer: ItemsReader,
    cursors: CursorsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Default 0; not with `cursor`.")] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Matches title or description, any case."),
    ] = None,
    sort: ItemSort = ItemSort.CREATED_AT_DESC,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
    ] = None,
) -> Response:
    """Anonymous callers see public items; users also their own private ones; admins everything.
    `total` counts what the caller may see, exactly up to 10,000 (`total_capped` beyond).
    Follow `next_cursor` for deep pages: each costs what the first one costs, where a large
    `offset` makes the database skip every row before it."""
    page = await service.list_items(
        session, viewer, cursors, q=q, sort=sort, limit=limit, offset=offset, cursor=cursor
    )
    body = {
        "items": [{field: row[field] for field in ITEM_FIELDS} for row in page.items],
        "total": page.total,
        "total_capped": page.total_capped,
        "limit": limit,
        "offset": None if cursor is not None else (offset or 0),
        "next_cursor": page.next_cursor,
    }
    # Serialised once, without validation: the rows are typed by their columns, and checking
    # 100 of them against ItemRead again (then FastAPI checking the page against
    # response_model) was most of the time Python spent on a page of 100 (bench/versus.py).
    # pydantic-core writes the JSON the models would (timestamps included); response_model
    # still describes it in the OpenAPI document, and tests/items check the shape.
    return Response(to_json(body), media_type="application/json")


@router.post(
    "",
    response_model=ItemRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an item owned by the caller",
    responses=responses(*WRITE_ERRORS),
)
async def create_item(data: ItemCreate, session: SessionDep, user: ItemsWriter) -> ItemRead:
    return ItemRead.model_validate(await service.create_item(session, data, user))


@router.get(
    "/{item_id}",
    response_model=ItemRead,
    summary="Read one item",
    responses=responses(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR),
)
async def get_item(item_id: int, session: SessionDep, viewer: ItemsReader) -> ItemRead:
    return ItemRead.model_validate(await service.get_item(session, item_id, viewer))


@router.put(
    "/{item_id}",
    response_model=ItemRead,
    summary="Change an item (owner or admin); omitted fields stay as they are",
    responses=responses(*WRITE_ERRORS, ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def update_item(item_id: int, data: ItemUpdate, session: SessionDep, user: ItemsWriter) -> ItemRead:
    return ItemRead.model_validate(await service.update_item(session, item_id, data, user))


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an item (owner or admin)",
    responses=responses(*WRITE_ERRORS, ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def delete_item(item_id: int, session: SessionDep, user: ItemsWriter) -> Response:
    await service.delete_item(session, item_id, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
