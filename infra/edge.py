"""Protection at the edge: an AWS WAF web ACL on the API stage (context `waf`: on for prod, off for dev).

Rules, in order:
- AWS managed rule groups: the common rule set (its 8 KB body rule counts only: the body size rule below replaces
  it, with webhooks exempt; webhooks are left out of the group, as they carry providers' payloads and are
  authenticated by their signature), known bad inputs, and the Amazon IP reputation list.
- A rate-based rule per client IP on POST /orders (placing orders is what bots hoard stock with).
- A body size rule: a body over 16 KB is blocked, except on /webhooks/* (providers' payloads can be larger) and
  /admin/imports/* (operators' CSV files, up to 1 MiB: the function checks the size and the admin group).
  API Gateway forwards 16 KB of body to WAF by default; larger bodies match by the oversize handling.
  https://docs.aws.amazon.com/waf/latest/developerguide/web-acl-setting-body-inspection-limit.html
Managed rule groups: https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-list.html
"""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as waf
from constructs import Construct

MAX_BODY_BYTES = 16 * 1024
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesAmazonIpReputationList")


def _visibility(name: str) -> waf.CfnWebACL.VisibilityConfigProperty:
    return waf.CfnWebACL.VisibilityConfigProperty(cloud_watch_metrics_enabled=True, metric_name=name,
                                                  sampled_requests_enabled=True)


def _path(position: str, text: str) -> waf.CfnWebACL.StatementProperty:
    return waf.CfnWebACL.StatementProperty(byte_match_statement=waf.CfnWebACL.ByteMatchStatementProperty(
        field_to_match=waf.CfnWebACL.FieldToMatchProperty(uri_path={}), positional_constraint=position,
        search_string=text,
        text_transformations=[waf.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")]))


def _not(statement: waf.CfnWebACL.StatementProperty) -> waf.CfnWebACL.StatementProperty:
    return waf.CfnWebACL.StatementProperty(not_statement=waf.CfnWebACL.NotStatementProperty(statement=statement))


class EdgeProtection(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: apigw.Stage, stage_name: str, name_prefix: str,
                 order_rate_limit: int):
        super().__init__(scope, construct_id)
        base = f"/{stage_name}"  # the path WAF sees: /v1/... on execute-api and on the custom domain (base path v1)
        webhooks = _path("STARTS_WITH", f"{base}/webhooks/")
        uploads = _path("STARTS_WITH", f"{base}/admin/imports/")
        rules = []
        for priority, group in enumerate(MANAGED_RULE_GROUPS):
            common = group == "AWSManagedRulesCommonRuleSet"
            rules.append(waf.CfnWebACL.RuleProperty(
                name=group, priority=priority, override_action=waf.CfnWebACL.OverrideActionProperty(none={}),
                statement=waf.CfnWebACL.StatementProperty(managed_rule_group_statement=(
                    waf.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=group,
                        rule_action_overrides=[waf.CfnWebACL.RuleActionOverrideProperty(
                            name="SizeRestrictions_BODY",
                            action_to_use=waf.CfnWebACL.RuleActionProperty(count={}))] if common else None,
                        scope_down_statement=_not(webhooks) if common else None))),
                visibility_config=_visibility(group)))
        rules.append(waf.CfnWebACL.RuleProperty(
            name="OrderPlacementRate", priority=len(rules), action=waf.CfnWebACL.RuleActionProperty(block={}),
            statement=waf.CfnWebACL.StatementProperty(rate_based_statement=waf.CfnWebACL.RateBasedStatementProperty(
                aggregate_key_type="IP", limit=order_rate_limit, evaluation_window_sec=300,
                scope_down_statement=waf.CfnWebACL.StatementProperty(and_statement=waf.CfnWebACL.AndStatementProperty(
                    statements=[_path("EXACTLY", f"{base}/orders"),
                                waf.CfnWebACL.StatementProperty(byte_match_statement=waf.CfnWebACL.ByteMatchStatementProperty(
                                    field_to_match=waf.CfnWebACL.FieldToMatchProperty(method={}),
                                    positional_constraint="EXACTLY", search_string="POST",
                                    text_transformations=[waf.CfnWebACL.TextTransformationProperty(
                                        priority=0, type="NONE")]))])))),
            visibility_config=_visibility("OrderPlacementRate")))
        rules.append(waf.CfnWebACL.RuleProperty(
            name="BodySize", priority=len(rules), action=waf.CfnWebACL.RuleActionProperty(block={}),
            statement=waf.CfnWebACL.StatementProperty(and_statement=waf.CfnWebACL.AndStatementProperty(statements=[
                waf.CfnWebACL.StatementProperty(size_constraint_statement=waf.CfnWebACL.SizeConstraintStatementProperty(
                    field_to_match=waf.CfnWebACL.FieldToMatchProperty(
                        body=waf.CfnWebACL.BodyProperty(oversize_handling="MATCH")),
                    comparison_operator="GT", size=MAX_BODY_BYTES,
                    text_transformations=[waf.CfnWebACL.TextTransformationProperty(priority=0, type="NONE")])),
                _not(waf.CfnWebACL.StatementProperty(or_statement=waf.CfnWebACL.OrStatementProperty(
                    statements=[webhooks, uploads])))])),
            visibility_config=_visibility("BodySize")))
        self.web_acl = waf.CfnWebACL(
            self, "WebAcl", name=f"{name_prefix}-api", scope="REGIONAL",
            default_action=waf.CfnWebACL.DefaultActionProperty(allow={}), rules=rules,
            visibility_config=_visibility(f"{name_prefix}-api"),
            description="Managed common, known bad inputs and IP reputation rules, POST /orders rate per IP, body size")
        waf.CfnWebACLAssociation(self, "Association", resource_arn=stage.stage_arn,
                                 web_acl_arn=self.web_acl.attr_arn)
