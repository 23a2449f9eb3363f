"""Printable labels: PDFs in a private S3 bucket, handed out as short-lived presigned GET URLs."""

from __future__ import annotations

from shop.adapters.aws import client
from shop.settings import get_settings


def label_key(order_id: str, shipment_id: str) -> str:
    return f"labels/{order_id}/{shipment_id}.pdf"


def store(order_id: str, shipment_id: str, pdf: bytes) -> str:
    """Put the label (the same key on a retry: idempotent); returns its key."""
    key = label_key(order_id, shipment_id)
    client("s3").put_object(Bucket=get_settings().label_bucket, Key=key, Body=pdf, ContentType="application/pdf",
                            ServerSideEncryption="AES256")
    return key


def url(key: str | None) -> str | None:
    """A presigned GET of the label, valid LABEL_URL_SECONDS (default 300)."""
    settings = get_settings()
    bucket, seconds = settings.label_bucket, settings.label_url_seconds
    if not key or not bucket:
        return None
    return client("s3").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                               ExpiresIn=seconds)
