"""One Secrets Manager secret per enabled payment provider, created empty (`{}`) by the stack, so configuring a
provider is filling in its value (docs/payments.md lists each provider's keys):

    aws secretsmanager put-secret-value --secret-id shop/dev/payments/stripe \\
        --secret-string '{"STRIPE_SECRET_KEY": "...", "STRIPE_WEBHOOK_SECRET": "..."}'

Until then the provider answers 503 provider-not-configured and its alarm fires (shop/payments/secrets.py).
CloudFormation never writes the value again: the template's `{}` does not change, so later deploys leave what
was filled in alone. The secrets are kept when the stack is deleted (and deleted if the first create rolls back).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, SecretValue
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

EMPTY = "{}"


class ProviderSecrets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, providers: list[str]):
        super().__init__(scope, construct_id)
        self.by_provider: dict[str, secretsmanager.Secret] = {}
        for provider in providers:
            self.by_provider[provider] = secretsmanager.Secret(
                self, provider, secret_name=f"{prefix}{provider}",
                description=f"{provider} keys (JSON object; the keys are listed in docs/payments.md)",
                secret_string_value=SecretValue.unsafe_plain_text(EMPTY),  # not a secret: an empty object
                removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)

