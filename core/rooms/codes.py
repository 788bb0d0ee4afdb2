"""Room codes a class can read aloud, and teacher tokens nobody can guess.

A code is typed on a phone from a board at the front of the room, so it uses
an alphabet without look-alikes (no ``0``/``O``, no ``1``/``I``) and is read
case-insensitively. Eight characters from 32 give 40 bits: someone who tries
a thousand codes a second would need about 35 years to hit one of a hundred
open rooms. Codes and tokens come from ``secrets``, never from ``random``.

The teacher token is what makes a session the teacher's: it is returned once,
when the room is opened, and only its SHA-256 is stored, so a copy of the
database does not let anyone run someone else's room.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from core.errors import InvalidInput

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 characters: no 0, O, 1 or I
CODE_LENGTH = 8  # 8 x 5 bits = 40 bits
TOKEN_BYTES = 24  # 192 bits, written as 32 URL-safe characters


def new_code() -> str:
    """A fresh random room code such as ``K7QXM3PA``."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: object) -> str:
    """The code as stored: upper case, without the spaces or dashes people put in to read it.

    A string that cannot be a code at all is refused here, with a hint, before
    any lookup; a well-formed code that matches no open room is for the store to say.
    """
    text = code.strip().upper().replace("-", "").replace(" ", "") if isinstance(code, str) else ""
    if len(text) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in text):
        raise InvalidInput(
            f"A room code is {CODE_LENGTH} letters and digits, such as 'K7QX M3PA' "
            "(there is no 0, O, 1 or I in a code): check what you typed."
        )
    return text


def readable_code(code: str) -> str:
    """A code as the board shows it, in two groups of four (``K7QX M3PA``): easier to read aloud and to copy."""
    half = len(code) // 2
    return f"{code[:half]} {code[half:]}"


def new_teacher_token() -> str:
    """A random secret the teacher's session keeps; it is needed to reveal, advance and close."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the store keeps of a teacher token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: object, stored_hash: str) -> bool:
    """True when ``token`` is the one whose hash was stored (compared in constant time)."""
    if not isinstance(token, str) or not token:
        return False
    return hmac.compare_digest(token_hash(token), stored_hash)
