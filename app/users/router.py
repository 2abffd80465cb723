from fastapi import APIRouter, Response

from app.auth.deps import CurrentUser, OptionalUser
from app.db import SessionDep
from app.errors import ErrorCode, responses
from app.users import service
from app.users.schemas import UserPublic, UserRead

router = APIRouter(prefix="/users", tags=["users"])


@router.get(
    "/me",
    response_model=UserRead,
    summary="The logged-in user",
    responses=responses(ErrorCode.NOT_AUTHENTICATED),
)
async def read_me(user: CurrentUser) -> Response:
    # Served from the session store's snapshot, with no database query, and
    # serialised once (returning a Response skips FastAPI's response-model pass).
    return Response(UserRead.model_validate(user).model_dump_json(), media_type="application/json")


@router.get(
    "/{user_id}",
    response_model=UserRead | UserPublic,
    summary="A user's public profile (the full record for the user itself and admins)",
    responses=responses(ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR),
)
async def read_user(user_id: int, session: SessionDep, viewer: OptionalUser) -> UserRead | UserPublic:
    user, full = await service.get_profile(session, user_id, viewer)
    return UserRead.model_validate(user) if full else UserPublic.model_validate(user)
