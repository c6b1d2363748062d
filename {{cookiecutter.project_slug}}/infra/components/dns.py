"""TLS and DNS for `domainName`: an ACM certificate validated in Route 53, and the alias record."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token


@dataclass
class CertificateArgs:
    domain_name: str
    hosted_zone_name: str


class Certificate(pulumi.ComponentResource):
    """DNS validation, so renewal is automatic for as long as the record stays in the zone."""

    def __init__(
        self, name: str, args: CertificateArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("Certificate"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.zone_id = aws.route53.get_zone_output(
            name=args.hosted_zone_name, private_zone=False
        ).zone_id
        certificate = aws.acm.Certificate(
            f"{name}-cert",
            domain_name=args.domain_name,
            validation_method="DNS",
            opts=child,
        )
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-validation",
            zone_id=self.zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=300,
            allow_overwrite=True,
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )
        # Listeners take the validated ARN, so they wait until ACM has issued the certificate.
        self.certificate_arn = validation.certificate_arn
        self.register_outputs({"certificate_arn": self.certificate_arn})


@dataclass
class AliasRecordArgs:
    domain_name: str
    zone_id: pulumi.Input[str]
    target_dns_name: pulumi.Input[str]
    target_zone_id: pulumi.Input[str]
    # "latency": one record per region (stack) under the same name, Route 53 answering with
    # the nearest healthy one (infra/README.md, "Running in a second region").
    routing: str = "simple"
    region: str = ""


class AliasRecord(pulumi.ComponentResource):
    """`domainName` -> the ALB, as an alias (no charge for queries, follows the ALB's IPs)."""

    def __init__(
        self, name: str, args: AliasRecordArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(type_token("AliasRecord"), name, None, opts)
        self.record = aws.route53.Record(
            f"{name}-alias",
            zone_id=args.zone_id,
            name=args.domain_name,
            type="A",
            aliases=[
                {
                    "name": args.target_dns_name,
                    "zone_id": args.target_zone_id,
                    "evaluate_target_health": True,
                }
            ],
            **(
                {
                    "set_identifier": args.region,
                    "latency_routing_policies": [{"region": args.region}],
                }
                if args.routing == "latency"
                else {}
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.fqdn = self.record.fqdn
        self.register_outputs({"fqdn": self.fqdn})
