"""/users/me/tokens (API.md section 11): your personal access tokens. Listing and deleting
need a session; creating one a fresh session (section 9). No token can reach these
routes (they name no scope): a leaked token cannot mint or hide others."""

from fastapi import APIRouter, Path, Request, Response, status

from app.auth.deps import CurrentUser, FreshPrincipal
from app.auth.sessions import StoreDep
from app.auth.tokens import repository, service
from app.auth.tokens.schemas import TokenCreate, TokenCreated, TokenRead
from app.db import MAX_ID, SessionDep
from app.errors import ErrorCode, responses

router = APIRouter(prefix="/users/me/tokens", tags=["personal access tokens"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    summary="Create a personal access token",
    responses=responses(
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.REAUTHENTICATION_REQUIRED,
        ErrorCode.CONFLICT,
        ErrorCode.CSRF_FAILED,
    ),
)
async def create_token(
    request: Request, session: SessionDep, body: TokenCreate, principal: FreshPrincipal
) -> TokenCreated:
    """`token` is in this answer only: store it now. Send it as `Authorization: Bearer
    <token>` (no cookie, no CSRF token); it reaches only the routes its scopes name.
    At most 100 tokens per user (409 beyond)."""
    created = await service.create(
        session, request, principal.user.id, name=body.name, scopes=body.scopes, days=body.expires_in_days
    )
    return TokenCreated(**TokenRead.model_validate(created.row).model_dump(), token=created.token)


@router.get(
    "",
    response_model=list[TokenRead],
    summary="Your personal access tokens",
    responses=responses(ErrorCode.NOT_AUTHENTICATED),
)
async def list_tokens(session: SessionDep, user: CurrentUser) -> list[TokenRead]:
    """Expired tokens stay listed (they no longer work) until you delete them."""
    return [TokenRead.model_validate(row) for row in await repository.tokens_of(session, user.id)]


@router.delete(
    "/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a personal access token",
    responses=responses(ErrorCode.NOT_AUTHENTICATED, ErrorCode.NOT_FOUND, ErrorCode.CSRF_FAILED),
)
async def delete_token(
    request: Request,
    session: SessionDep,
    store: StoreDep,
    user: CurrentUser,
    token_id: int = Path(ge=1, le=MAX_ID),
) -> Response:
    """It stops working at once, in every worker."""
    await service.revoke(session, request, store, user.id, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
