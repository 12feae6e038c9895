"""API keys: constant-time checks, and the owner id a key's chats are recorded under."""

from __future__ import annotations

import hashlib
import hmac


class KeyRing:
    """The configured keys; empty means the service is open (and bound to loopback)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def owner_of(self, presented: str | None) -> str | None:
        """The owner id for a presented key, or None if it matches no key.

        Every key is compared, in constant time, so timing tells nothing about which one
        (or how much of one) matched.
        """
        if not presented:
            return None
        candidate = presented.encode()
        matched: bytes | None = None
        for key in self._keys:
            if hmac.compare_digest(key, candidate):
                matched = key
        # Chats record a digest of the key, never the key itself.
        return hashlib.sha256(matched).hexdigest()[:32] if matched is not None else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
