"""fastapi-users' user database and manager, adapted to this service.

- The adapter flushes instead of committing: the request's session commits once.
- Login is by username or email; unknown users cost a hash too (timing parity).
- Hashing runs in a thread (argon2-cffi releases the GIL).
- The password policy of API.md section 3.
"""

from typing import Any

from fastapi import Request
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import BaseUserManager, IntegerIDMixin, exceptions, schemas
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from app.auth.passwords import dummy_hash, hash_password, password_problem, verify_password
from app.models import User


class UserDatabase(SQLAlchemyUserDatabase[User, int]):
    async def create(self, create_dict: dict[str, Any]) -> User:
        user = User(**create_dict)
        self.session.add(user)
        await self.session.flush()
        return user

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        for key, value in update_dict.items():
            setattr(user, key, value)
        self.session.add(user)
        await self.session.flush()
        return user

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()

    async def get_by_login(self, identifier: str) -> User | None:
        """A username never contains "@", so one comparison decides which column."""
        column = User.email if "@" in identifier else User.username
        return await self._get_user(select(User).where(func.lower(column) == identifier.lower()))

    async def taken(self, email: str, username: str) -> bool:
        statement = select(User.id).where(
            or_(func.lower(User.email) == email.lower(), func.lower(User.username) == username.lower())
        )
        return (await self.session.execute(statement.limit(1))).first() is not None


class UserManager(IntegerIDMixin, BaseUserManager[User, int]):
    user_db: UserDatabase

    def __init__(self, user_db: UserDatabase, secret: str) -> None:
        super().__init__(user_db)
        self.reset_password_token_secret = secret
        self.verification_token_secret = secret

    async def validate_password(self, password: str, user: schemas.UC | User) -> None:
        problem = password_problem(
            password, username=getattr(user, "username", ""), email=getattr(user, "email", "")
        )
        if problem is not None:
            raise exceptions.InvalidPasswordException(reason=problem)

    async def create(
        self, user_create: schemas.UC, safe: bool = False, request: Request | None = None
    ) -> User:
        await self.validate_password(user_create.password, user_create)
        user_dict = user_create.create_update_dict() if safe else user_create.create_update_dict_superuser()
        if await self.user_db.taken(user_dict["email"], user_dict["username"]):
            raise exceptions.UserAlreadyExists()
        user_dict["hashed_password"] = await hash_password(user_dict.pop("password"))
        try:
            # The unique indexes on lower(email) and lower(username) decide races.
            created = await self.user_db.create(user_dict)
        except IntegrityError as exc:
            raise exceptions.UserAlreadyExists() from exc
        await self.on_after_register(created, request)
        return created

    async def authenticate_login(self, identifier: str, password: str) -> User | None:
        """The user whose username or email is `identifier` and whose password matches."""
        user = await self.user_db.get_by_login(identifier)
        if user is None:
            # Same work as a wrong password, so timing does not reveal which it was
            # (Django ticket #20760).
            await verify_password(password, dummy_hash())
            return None
        verified, upgraded = await verify_password(password, user.hashed_password)
        if not verified:
            return None
        if upgraded is not None:
            await self.user_db.update(user, {"hashed_password": upgraded})
        return user

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> User | None:
        return await self.authenticate_login(credentials.username, credentials.password)

    async def _update(self, user: User, update_dict: dict[str, Any]) -> User:
        validated: dict[str, Any] = {}
        for field, value in update_dict.items():
            if field == "email" and value.lower() != user.email.lower():
                if await self.user_db.get_by_login(value) is not None:
                    raise exceptions.UserAlreadyExists()
                validated["email"] = value
                validated["is_verified"] = False
            elif field == "username" and value.lower() != user.username.lower():
                if await self.user_db.get_by_login(value) is not None:
                    raise exceptions.UserAlreadyExists()
                validated["username"] = value
            elif field == "password" and value is not None:
                await self.validate_password(value, user)
                validated["hashed_password"] = await hash_password(value)
            else:
                validated[field] = value
        try:
            return await self.user_db.update(user, validated)
        except IntegrityError as exc:
            raise exceptions.UserAlreadyExists() from exc
