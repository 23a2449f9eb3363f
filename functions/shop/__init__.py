"""Shared domain package bundled with every function.

`shop.domain` holds the rules (no boto3), `shop.services` the use cases,
`shop.adapters` the AWS-facing implementations, `shop.http` the REST routes.
"""
