"""Short signed tokens for the QR codes of slips: ``<id in base 32>-<10 characters of HMAC-SHA256>``.

They carry no personal data (only the slip's row id), are short enough for a small QR code that still scans
from a cheap print, and cannot be forged or altered without the application's secret key."""

from __future__ import annotations

import hashlib
import hmac

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32
_MAC_LENGTH = 10  # 50 bits: guessing one valid token takes ~10^15 tries


def _b32(number: int) -> str:
    digits = ""
    while True:
        number, rest = divmod(number, 32)
        digits = _ALPHABET[rest] + digits
        if number == 0:
            return digits


def _mac(secret: str, purpose: str, ident: str) -> str:
    key = hashlib.sha256(f"logistique/{purpose}/{secret}".encode()).digest()
    digest = int.from_bytes(hmac.new(key, ident.encode(), hashlib.sha256).digest()[:8], "big")
    return _b32(digest)[-_MAC_LENGTH:].rjust(_MAC_LENGTH, "0")


def sign(secret: str, purpose: str, number: int) -> str:
    """The token of row ``number`` for ``purpose`` (e.g. "slip")."""
    ident = _b32(number)
    return f"{ident}-{_mac(secret, purpose, ident)}"


def verify(secret: str, purpose: str, token: str) -> int | None:
    """The row id a token names, or None when it is malformed, altered or signed with another key."""
    ident, sep, mac = (token or "").strip().upper().partition("-")
    if not sep or not ident or len(ident) > 13 or len(mac) != _MAC_LENGTH:
        return None
    if any(c not in _ALPHABET for c in ident + mac):
        return None
    if not hmac.compare_digest(mac, _mac(secret, purpose, ident)):
        return None
    number = 0
    for c in ident:
        number = number * 32 + _ALPHABET.index(c)
    return number
