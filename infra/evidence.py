"""The evidence bucket of after-sales requests (docs/after-sales.md).

Customers' browsers upload photos straight into it with presigned POSTs that the orders function signs; operators
view them through presigned GETs that the admin function signs. Nothing in it is public: all public access
blocked, objects owned by the bucket owner (no ACLs), SSL only, encrypted at rest, and every photo expires after
`evidence_expiry_days`. CORS allows exactly the browser POST of an upload form from the storefront's origins.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from shop.domain.after_sales import EVIDENCE_PREFIX


class EvidenceBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cors_origins: list[str], expiry_days: int) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self, "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            # Browser uploads: the form POST (and its preflight) from the storefront; the signature is the
            # authorization, so without configured origins any origin may post a form it was given a policy for.
            cors=[s3.CorsRule(allowed_methods=[s3.HttpMethods.POST], allowed_origins=cors_origins or ["*"],
                              allowed_headers=["*"], max_age=3000)],
            lifecycle_rules=[s3.LifecycleRule(id="expire-evidence", prefix=EVIDENCE_PREFIX,
                                              expiration=Duration.days(expiry_days),
                                              abort_incomplete_multipart_upload_after=Duration.days(1))],
            # Kept when the stack is deleted (evidence of open disputes), deleted by the rollback of a failed create.
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        NagSuppressions.add_resource_suppressions(self.bucket, [NagPackSuppression(id="AwsSolutions-S1", reason=(
            "Evidence photos expire by lifecycle and are written only through presigned POSTs the orders function "
            "signs for one key each; who asked for each upload is in the API's access logs. Server access logs "
            "would need a second bucket for little more."))])

    def objects_arn(self) -> str:
        """What the functions' grants name (the manifest's "on evidence bucket"): the evidence keys only."""
        return self.bucket.arn_for_objects(f"{EVIDENCE_PREFIX}*")
