"""Passwords and bearer tokens, with the standard library only.

Passwords are hashed with scrypt (RFC 7914; n = 2**14, r = 8, p = 1, 16-byte salt,
32-byte key), stored as ``scrypt$n$r$p$salt_hex$key_hex``. Tokens (the OAuth2 password
flow's access tokens) are ``base64url(claims) "." base64url(HMAC-SHA256(secret, claims))``
with claims ``{"sub": username, "role": ..., "iat": s, "exp": s}`` (seconds since the
epoch); the secret is the deployment's (``$RESCITY_SECRET`` or ``./.rescity/secret``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

_N, _R, _P, _DK = 2**14, 8, 1, 32


class AuthError(ValueError):
    """Bad credentials or an invalid, forged or expired token."""


def hash_password(password: str) -> str:
    if not password:
        raise AuthError("a password must not be empty")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_DK)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt, key = stored.split("$")
    except ValueError:
        return False
    if algo != "scrypt":
        return False
    got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                         p=int(p), dklen=len(key) // 2)
    return hmac.compare_digest(got.hex(), key)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def issue_token(secret: bytes, claims: dict[str, Any], now_s: float, ttl_s: float = 8 * 3600) -> str:
    body = {**claims, "iat": int(now_s), "exp": int(now_s + ttl_s)}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    sig = hmac.new(secret, raw, hashlib.sha256).digest()
    return f"{_b64(raw)}.{_b64(sig)}"


def read_token(secret: bytes, token: str, now_s: float) -> dict[str, Any]:
    """The claims of a valid token, or :class:`AuthError`."""
    try:
        raw_s, sig_s = token.split(".")
        raw, sig = _unb64(raw_s), _unb64(sig_s)
    except (ValueError, TypeError):
        raise AuthError("malformed token") from None
    if not hmac.compare_digest(hmac.new(secret, raw, hashlib.sha256).digest(), sig):
        raise AuthError("invalid token signature")
    try:
        claims = json.loads(raw)
    except ValueError:
        raise AuthError("malformed token") from None
    if not isinstance(claims, dict) or "sub" not in claims or "exp" not in claims:
        raise AuthError("malformed token")
    if now_s >= float(claims["exp"]):
        raise AuthError("token expired")
    return claims


def deployment_secret(root: Path | None = None) -> bytes:
    """``$RESCITY_SECRET``, else ``<root or cwd>/.rescity/secret`` (created, mode 0600)."""
    env = os.environ.get("RESCITY_SECRET")
    if env:
        return env.encode("utf-8")
    path = (root or Path.cwd()) / ".rescity" / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode("utf-8")
