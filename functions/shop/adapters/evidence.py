"""Evidence photos of after-sales requests: uploaded by the customer's browser straight to S3 through presigned
POSTs (the API never sees the bytes), viewed by operators through short-lived presigned GETs.

Each POST policy pins the object key (one per photo, under the request's own prefix), the content type (one
of shop.domain.after_sales.PHOTO_TYPES) and the size (`content-length-range`); S3 refuses an upload that breaks
any of them. Presigning is local (no call to S3): the signature is only as good as the role's permission,
s3:PutObject (s3:GetObject to view) on the evidence prefix, which is what infra/evidence.py grants.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config


class S3Evidence:
    def __init__(self, bucket: str, *, max_bytes: int, expires_seconds: int, view_seconds: int = 300):
        self.bucket = bucket
        self.max_bytes = max_bytes
        self.expires_seconds = expires_seconds
        self.view_seconds = view_seconds

    @cached_property
    def s3(self) -> Any:
        # Signature Version 4: the only one S3 accepts in regions opened since 2014, and for KMS-encrypted objects.
        return boto3.client("s3", config=Config(signature_version="s3v4", connect_timeout=2, read_timeout=5))

    def upload_slots(self, keys: list[str], content_types: list[str]) -> list[dict[str, Any]]:
        """One presigned POST per key: {url, fields, key, content_type, max_bytes}; the browser sends `fields`
        plus the file as multipart/form-data to `url`."""
        s3 = self.s3
        slots = []
        for key, content_type in zip(keys, content_types, strict=True):
            post = s3.generate_presigned_post(
                Bucket=self.bucket, Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"Content-Type": content_type},  # exactly this type (shop.domain.after_sales.PHOTO_TYPES)
                    ["content-length-range", 1, self.max_bytes],  # no empty file, nothing above the limit
                ],
                ExpiresIn=self.expires_seconds)
            slots.append({"url": post["url"], "fields": post["fields"], "key": key, "content_type": content_type,
                          "max_bytes": self.max_bytes})
        return slots

    def view_urls(self, keys: list[str]) -> list[str]:
        return [self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                          ExpiresIn=self.view_seconds) for key in keys]
