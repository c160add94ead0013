"""Protecting personal data in flight: HMAC hashing, masking and AES-GCM encryption with ETL_PII_KEY.

The key comes from the environment only (``ETL_PII_KEY``, masked in logs like every secret) and is
never written to project.yml. ``hash`` is HMAC-SHA256 keyed by it (hex text: the same value always
gives the same hash, so hashed columns still join). ``encrypt`` is AES-256-GCM with a key derived from
it (HKDF-SHA256) and a random 12-byte nonce per value, written as base64 text of nonce + ciphertext
+ tag; :func:`decrypt` (or ``python -m script_factory.transforms decrypt``) gives the text back to
whoever holds the key. Values are protected as text (:func:`value_text`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from script_factory.transform_spec import PII_KEY_VARIABLE
from utilities.errors import ConfigError, FatalError
from utilities.secrets import Secret

MIN_KEY_CHARACTERS = 32
NONCE_BYTES = 12
_ENCRYPT_INFO = b"script-factory pii encrypt v1"
KEY_HINT = f'e.g. {PII_KEY_VARIABLE}=$(python -c "import secrets; print(secrets.token_hex(32))") in .env'


def pii_key(value: str | None, where: str) -> Secret:
    """``value`` (ETL_PII_KEY) as a Secret; ConfigError naming ``where`` when it is missing or too short."""
    if not value:
        raise ConfigError(
            f"{where}: hash and encrypt need a key: set {PII_KEY_VARIABLE} in the environment ({KEY_HINT})"
        )
    if len(value) < MIN_KEY_CHARACTERS:
        raise ConfigError(
            f"{where}: {PII_KEY_VARIABLE} is too short: use at least {MIN_KEY_CHARACTERS} characters ({KEY_HINT})"
        )
    return Secret(value)


def value_text(value: Any) -> str:
    """The text a value is hashed, masked or encrypted as (ISO dates, plain decimals, true/false)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


class Protector:
    """hash / mask / encrypt with one key (derived keys computed once)."""

    def __init__(self, key: Secret | None) -> None:
        self._hash_key = key.reveal().encode("utf-8") if key else b""
        self._aead: Any = _aead(key) if key else None

    def hash(self, value: Any) -> str | None:
        if value is None:
            return None
        return hmac.new(self._hash_key, value_text(value).encode("utf-8"), hashlib.sha256).hexdigest()

    def encrypt(self, value: Any) -> str | None:
        if value is None:
            return None
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value_text(value).encode("utf-8"), None)
        return base64.b64encode(nonce + sealed).decode("ascii")


def mask(value: Any, keep: int) -> str | None:
    """The value's text with all but its last ``keep`` characters replaced by '*' (a value of ``keep``
    characters or fewer is masked whole, so short values do not leak)."""
    if value is None:
        return None
    text = value_text(value)
    if len(text) <= keep:
        return "*" * len(text)
    return "*" * (len(text) - keep) + text[-keep:]


def decrypt(token: str, key: Secret) -> str:
    """The text that :meth:`Protector.encrypt` sealed into ``token``; FatalError if the key is not the
    one it was encrypted with or the text was changed."""
    from cryptography.exceptions import InvalidTag

    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except ValueError:
        raise FatalError("decrypt: the value is not base64 text written by encrypt:") from None
    if len(raw) <= NONCE_BYTES:
        raise FatalError("decrypt: the value is too short to be written by encrypt:")
    try:
        return str(_aead(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode("utf-8"))
    except InvalidTag:
        raise FatalError(f"decrypt: wrong key or altered value (is {PII_KEY_VARIABLE} the key of that run?)") from None


def _aead(key: Secret) -> Any:
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    except ModuleNotFoundError as exc:
        raise FatalError(
            "encrypt: the package cryptography is not installed; run: pip install -r requirements.txt"
        ) from exc
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_ENCRYPT_INFO).derive(
        key.reveal().encode("utf-8")
    )
    return AESGCM(derived)
