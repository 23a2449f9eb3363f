"""Signature schemes: Stripe's timestamped HMAC (also used by the sandbox), RSA-SHA256 (Alipay RSA2, WeChat Pay v3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shop.payments.base import InvalidWebhook

TOLERANCE_S = 300
# A signed timestamp: Unix seconds in plain ASCII digits. str.isdigit() also passes '²' and other scripts' digits,
# and int() refuses more than 4300 digits: either would reach int() and fail as a crash, not a refusal.
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def within_tolerance(timestamp: str, now: float | None = None) -> bool:
    """`timestamp` (Unix seconds as the provider wrote them) is no more than TOLERANCE_S from now, either way."""
    if not _UNIX_SECONDS.fullmatch(timestamp):
        return False
    return abs((time.time() if now is None else now) - int(timestamp)) <= TOLERANCE_S


def hmac_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + body
    return f"t={t},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def verify_hmac_header(header_value: str | None, body: bytes, secret: str, now: float | None = None) -> None:
    """Stripe-Signature: t=...,v1=...[,v1=...]; HMAC-SHA256 over "{t}.{body}", 300 s either way."""
    if not header_value:
        raise InvalidWebhook("signature header missing", 401)
    timestamp, signatures = None, []
    for part in header_value.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidWebhook("signature header malformed", 401)
    if not within_tolerance(timestamp, now):
        raise InvalidWebhook("signature timestamp malformed or outside the tolerance", 401)
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidWebhook("signature does not match", 401)


def load_private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"expected an RSA private key, got {type(key).__name__}")  # signing would fail anyway
    return key


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"expected an RSA public key, got {type(key).__name__}")  # verifying would fail anyway
    return key


def rsa_sign(private_pem: str, message: bytes) -> str:
    signature = load_private_key(private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_verify(public_pem: str, message: bytes, signature_b64: str) -> None:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        load_public_key(public_pem).verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        raise InvalidWebhook("signature does not verify", 401) from None


def new_rsa_keypair() -> tuple[str, str]:
    """(private PEM, public PEM), for tests and the local run's fake providers."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public
