"""POST /api/auth/login returns a JWT; ``current_user`` guards the API."""

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import jwt
from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import text

from app import config, db

router = APIRouter(prefix="/api/auth")
bearer = HTTPBearer(auto_error=False)


class Login(BaseModel):
    username: str
    password: str


def verify_password(password: str, stored: str) -> bool:
    """``pbkdf2_sha256$<iterations>$<salt>$<hex digest>``."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    computed = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations)).hex()
    return hmac.compare_digest(computed, digest)


@router.post("/login")
def login(body: Login) -> dict:
    with db.engine.connect() as conn:
        row = conn.execute(
            text("SELECT password_hash, role FROM users WHERE username = :u AND is_active"),
            {"u": body.username},
        ).first()
    if row is None or not verify_password(body.password, row.password_hash):
        raise HTTPException(status_code=401, detail="invalid username or password")
    expires = datetime.now(timezone.utc) + timedelta(minutes=30)
    token = jwt.encode({"sub": body.username, "role": row.role, "exp": expires}, config.jwt_secret(), "HS256")
    return {"access_token": token, "token_type": "bearer"}


def current_user(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    if credentials is None:
        raise HTTPException(status_code=401, detail="not authenticated")
    try:
        claims = jwt.decode(credentials.credentials, config.jwt_secret(), algorithms=["HS256"])
    except jwt.PyJWTError:
        raise HTTPException(status_code=401, detail="invalid token") from None
    return claims["sub"]
