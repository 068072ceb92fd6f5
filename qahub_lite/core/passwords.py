"""Password hashing for dashboard users: scrypt from the standard library.

Why scrypt and not argon2: scrypt is memory-hard (each guess needs `128 * r * n` bytes, 32 MiB
here, which is what makes GPU and ASIC guessing expensive), it ships with Python through
OpenSSL, and so it costs qahub-lite no dependency and no compiled wheel in the single-file
build. The parameters are one of OWASP's equivalent scrypt settings (n=2^15, r=8, p=3): about a
third of a second per check on a 2-core VM, which sign-in rate limiting turns into a few guesses
per quarter hour.

A hash is stored as `scrypt$<n>$<r>$<p>$<salt>$<key>` (base64 without padding), so its cost
travels with it: raising the parameters later makes old hashes `needs_rehash`, and they are
upgraded at the user's next sign-in without anybody choosing a new password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 3
KEY_BYTES = 32
SALT_BYTES = 16
# OpenSSL refuses to allocate more than `maxmem`; 128*r*n plus its own overhead must fit.
_MAXMEM = 256 * 1024 * 1024
MIN_LENGTH = 10
# Long enough for any passphrase or password-manager output, short enough that nobody can make
# the server hash megabytes per attempt.
MAX_LENGTH = 1024


class WeakPassword(ValueError):
    """A password the policy refuses; the message says why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def check_policy(password: str) -> None:
    """Refuse passwords too short to resist guessing or too long to hash cheaply."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password may have at most {MAX_LENGTH} characters")
    if password.strip() != password:
        # Pasted passwords often carry a stray newline; refusing beats silently storing it.
        raise WeakPassword("a password must not start or end with spaces")


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    check_policy(password)
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=_MAXMEM)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded`; False for a mismatch or a malformed hash.
    Compares in constant time. Slow on purpose: call it off the event loop."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = hashlib.scrypt(
            password.encode()[: MAX_LENGTH * 4], salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected), maxmem=_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def needs_rehash(encoded: str) -> bool:
    """True when `encoded` was made with other parameters than today's."""
    try:
        scheme, n, r, p, _, _ = encoded.split("$")
        return scheme != "scrypt" or (int(n), int(r), int(p)) != (N, R, P)
    except ValueError:
        return True


def generate_password() -> str:
    """A password for a new user or a reset: 120 random bits in 20 URL-safe characters, shown
    once. Long enough that nobody needs to choose their own to be safe."""
    return secrets.token_urlsafe(15)


_dummy: list[str] = []


def burn_time(password: str) -> None:
    """Do the work of one verification for a user that does not exist, so that the answer's
    timing does not tell which user names are real."""
    if not _dummy:
        _dummy.append(hash_password(generate_password()))
    verify_password(password, _dummy[0])
