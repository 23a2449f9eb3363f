"""The REST API, built from the manifest's routes: Cognito for shoppers and operators, none for webhooks."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, CfnOutput, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from shop.http import cors
from shop.http.auth import ADMIN_GROUP
from shop.manifest import ROUTES

STAGE = "v1"


@dataclass(frozen=True)
class SignIn:
    """How customers sign in (context cognito_*). Without an SES identity Cognito sends the sign-up and recovery
    mail itself, with a small daily quota; without callback URLs the client has no OAuth (hosted UI) flows."""
    ses_from_email: str = ""  # a verified SES identity (address, or one of a verified domain)
    ses_region: str = ""  # where that identity is verified; default: the stack's region
    callback_urls: tuple[str, ...] = ()
    logout_urls: tuple[str, ...] = ()
    domain_prefix: str = ""  # the hosted UI's <prefix>.auth.<region>.amazoncognito.com, needed with callback URLs


class Api(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, name_prefix: str, functions: dict[str, lambda_.IFunction],
                 throttle_rate: int, throttle_burst: int, domain_name: str = "", certificate_arn: str = "",
                 cors_origins: list[str] | None = None,
                 route_throttles: dict[tuple[str, str], tuple[int, int]] | None = None, sign_in: SignIn = SignIn(),
                 production: bool = False):
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self, "Customers",
            user_pool_name=f"{name_prefix}-customers",
            self_sign_up_enabled=True,
            sign_in_aliases=cognito.SignInAliases(email=True),
            password_policy=cognito.PasswordPolicy(min_length=12, require_digits=True, require_lowercase=True,
                                                   require_uppercase=True, require_symbols=True),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            email=self._email(sign_in, production),
            # Retained on delete, deleted when a failed first create rolls back (RetainExceptOnCreate; infra/data.py).
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        cognito.CfnUserPoolGroup(self, "AdminGroup", user_pool_id=self.user_pool.user_pool_id, group_name=ADMIN_GROUP,
                                 description="Operators: catalog, stock, orders, refunds")
        self.client = self._storefront_client(sign_in)
        authorizer = apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[self.user_pool])

        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH,
                                    removal_policy=RemovalPolicy.DESTROY)
        self.rest_api = apigw.RestApi(
            self, "RestApi",
            # Unique per stage: the API's CloudWatch metrics (and the 5xx alarm) are keyed by this name.
            rest_api_name=f"{name_prefix}-api",
            description="Shop transaction core: orders, payments, inventory",
            # The role API Gateway logs with is one setting per account and region (AWS::ApiGateway::Account), which
            # other APIs use too: deleting this stack must not delete it.
            # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Browser storefronts on other origins: API Gateway answers the preflight, the functions add
            # the headers to their own answers (shop/http/cors.py).
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=cors_origins, allow_methods=cors.ALLOW_METHODS, allow_headers=cors.ALLOW_HEADERS,
                max_age=Duration.seconds(cors.MAX_AGE_SECONDS)) if cors_origins else None,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies carry addresses: never log them
                metrics_enabled=True,
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
                # Per-route buckets (method throttling overrides the stage's for that method), so webhooks, public
                # catalog reads and order placement do not take each other's share:
                # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html
                # (A method's settings replace the stage's for it, so it repeats the logging and metrics settings.)
                method_options={f"{path}/{method}": apigw.MethodDeploymentOptions(
                    throttling_rate_limit=rate, throttling_burst_limit=burst, logging_level=apigw.MethodLoggingLevel.ERROR,
                    metrics_enabled=True, data_trace_enabled=False)
                    for (method, path), (rate, burst) in (route_throttles or {}).items()},
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True),
            ),
        )
        # No gateway request validator: without models it validates nothing. Each handler validates its input
        # (pydantic) and answers RFC 9457 problems, which a gateway validator's own 400s would not be.
        # One invoke permission per function for this API (not one per method): a stack holds 500 resources at
        # most, and per-method permissions (one per route, ~110) pushed the stack with its optional parts past it.
        integrations = {name: apigw.LambdaIntegration(fn, proxy=True, scope_permission_to_method=False)
                        for name, fn in functions.items()}
        for route in ROUTES:
            resource = self.rest_api.root.resource_for_path(route.path)
            options: dict = {}
            if route.auth in ("customer", "admin"):
                options.update(authorizer=authorizer, authorization_type=apigw.AuthorizationType.COGNITO)
            resource.add_method(route.method, integrations[route.function], **options)

        if cors_origins:
            self._cors_on_gateway_errors(cors_origins)
        # No usage plan: without API keys it throttles nothing (the stage and per-route throttles and WAF do).
        if bool(domain_name) != bool(certificate_arn):
            raise ValueError("context domain_name and certificate_arn go together: give both or neither")
        if domain_name and certificate_arn:
            domain = apigw.DomainName(
                self, "Domain", domain_name=domain_name, security_policy=apigw.SecurityPolicy.TLS_1_2,
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn))
            domain.add_base_path_mapping(self.rest_api, base_path=STAGE, stage=self.rest_api.deployment_stage)
        # What a storefront needs to sign customers in and call the API (README: Deploy, "Signing customers in").
        stack = Stack.of(self)
        CfnOutput(stack, "UserPoolId", value=self.user_pool.user_pool_id, description="Cognito user pool of customers")
        CfnOutput(stack, "UserPoolClientId", value=self.client.user_pool_client_id,
                  description="App client a storefront signs customers in with (SRP; no secret)")
        CfnOutput(stack, "ApiUrl", value=f"https://{domain_name}/{STAGE}/" if domain_name else self.rest_api.url,
                  description="Base URL of the API; send the customer's ID token in the Authorization header")

    def _email(self, sign_in: SignIn, production: bool) -> cognito.UserPoolEmail | None:
        """Sign-up and recovery mail through SES with a verified identity: Cognito's own sender has a small daily
        quota (https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-email.html)."""
        if not sign_in.ses_from_email:
            if production:
                Annotations.of(self).add_warning_v2(
                    "shop:cognito-default-email", "Cognito sends sign-up mail itself (a few per day): give "
                    "-c cognito_ses_from_email=<verified SES identity> before launch")
            return None
        region = sign_in.ses_region or ("" if Token.is_unresolved(Stack.of(self).region) else Stack.of(self).region)
        if not region:
            raise ValueError("cognito_ses_from_email needs the region its SES identity is verified in: "
                             "-c cognito_ses_region=<region> (or a stack bound to a region)")
        return cognito.UserPoolEmail.with_ses(from_email=sign_in.ses_from_email, ses_region=region)

    def _storefront_client(self, sign_in: SignIn) -> cognito.UserPoolClient:
        """A public client (no secret: it runs in browsers and apps) signing in with SRP. OAuth only when the shop
        gives callback URLs, and then only the authorization code grant (never the implicit flow), instead of CDK's
        defaults (both flows, https://example.com)."""
        oauth = bool(sign_in.callback_urls)
        if oauth and not sign_in.domain_prefix:
            raise ValueError("cognito_callback_urls need a hosted UI domain: -c cognito_domain_prefix=<prefix>")
        client = self.user_pool.add_client(
            "Storefront", auth_flows=cognito.AuthFlow(user_srp=True), generate_secret=False,
            prevent_user_existence_errors=True, disable_o_auth=not oauth,
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=False),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=list(sign_in.callback_urls), logout_urls=list(sign_in.logout_urls) or None)
            if oauth else None,
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO])
        if oauth:
            self.user_pool.add_domain("HostedUi", cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=sign_in.domain_prefix))
        return client

    def _cors_on_gateway_errors(self, origins: list[str]) -> None:
        """Answers API Gateway gives itself (401 from the authorizer, 429 throttled) carry the origin too, so a
        browser shows the real error. A gateway response cannot pick one of several origins: the first is named."""
        headers = {"Access-Control-Allow-Origin": f"'{origins[0]}'", "Vary": "'Origin'"}
        for kind in (apigw.ResponseType.DEFAULT_4_XX, apigw.ResponseType.DEFAULT_5_XX):
            self.rest_api.add_gateway_response(f"Cors{kind.response_type}", type=kind, response_headers=headers)
        # The preflight methods CDK adds carry no authorizer: browsers send OPTIONS without credentials.
        for method in self.rest_api.methods:
            if method.http_method == "OPTIONS":
                reason = "CORS preflight: browsers send OPTIONS without credentials; it is answered by API Gateway " \
                         "(mock integration) and reaches no function."
                NagSuppressions.add_resource_suppressions(method, [
                    NagPackSuppression(id="AwsSolutions-APIG4", reason=reason),
                    NagPackSuppression(id="AwsSolutions-COG4", reason=reason)])
