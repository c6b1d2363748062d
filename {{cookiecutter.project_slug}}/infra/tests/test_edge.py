"""Load balancer, TLS/DNS and WAF components."""

from __future__ import annotations

from mocks import AUTONAME_SUFFIX

LISTENER = "aws:lb/listener:Listener"


def test_alb_is_public_in_public_subnets_and_drops_bad_headers(default):
    alb = default.one("aws:lb/loadBalancer:LoadBalancer")
    public = {s.id for s in default.of_type("aws:ec2/subnet:Subnet") if "-public-" in s.name}
    assert set(alb.get("subnets")) == public
    assert alb.get("dropInvalidHeaderFields") is True


def test_unknown_paths_get_a_json_404_and_the_app_is_the_catch_all(default):
    for listener in default.of_type(LISTENER):
        (action,) = listener.get("defaultActions")
        assert action["type"] in {"fixed-response", "redirect"}
    route = default.one("aws:lb/listenerRule:ListenerRule", "-app-route")
    assert route.get("conditions") == [{"pathPattern": {"values": ["/*"]}}]


def test_domain_gets_a_dns_validated_certificate_and_an_alias(recorder):
    deployment = recorder.get({"domainName": "api.example.com"})
    certificate = deployment.one("aws:acm/certificate:Certificate")
    assert certificate.get("validationMethod") == "DNS"
    records = deployment.of_type("aws:route53/record:Record")
    alias = next(r for r in records if r.get("aliases"))
    assert alias.get("name") == "api.example.com"
    assert alias.get("aliases")[0]["name"] == deployment.outputs["alb_dns_name"]
    https = next(x for x in deployment.of_type(LISTENER) if x.get("port") == 443)
    validation = deployment.one("aws:acm/certificateValidation:CertificateValidation")
    assert https.get("certificateArn") == validation.get("certificateArn")


def test_no_domain_means_no_dns_records(default):
    if not default.cfg("domainName"):
        assert not default.of_type("aws:route53/record:Record")


def test_waf_uses_managed_groups_and_is_attached_to_the_alb(recorder):
    deployment = recorder.get({"useWaf": True})
    acl = deployment.one("aws:wafv2/webAcl:WebAcl")
    assert acl.get("scope") == "REGIONAL"
    groups = {
        r["statement"]["managedRuleGroupStatement"]["name"]
        for r in acl.get("rules")
        if "managedRuleGroupStatement" in r["statement"]
    }
    assert "AWSManagedRulesCommonRuleSet" in groups
    association = deployment.one("aws:wafv2/webAclAssociation:WebAclAssociation")
    alb = deployment.one("aws:lb/loadBalancer:LoadBalancer")
    assert association.get("resourceArn").endswith(f"/{alb.name}{AUTONAME_SUFFIX}")
    assert not recorder.get({"useWaf": False}).of_type("aws:wafv2/webAcl:WebAcl")
