"""VPC over two AZs with public and private subnets, and NAT according to `natGateway`."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import type_token

AZ_COUNT = 2
FLOW_LOGS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@dataclass
class NetworkArgs:
    cidr_block: str
    nat_gateway: str  # single | one_per_az | none
    flow_logs: bool = False
    log_retention_days: int = 30


class Network(pulumi.ComponentResource):
    """Public subnets hold the ALB (and the tasks when there is no NAT); private ones the data."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("Network"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones(state="available").names[:AZ_COUNT]
        subnets = list(ipaddress.ip_network(args.cidr_block).subnets(prefixlen_diff=4))

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={"Name": f"{name}-public"},
            opts=child,
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for index, zone in enumerate(zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{index}",
                vpc_id=self.vpc.id,
                cidr_block=str(subnets[index]),
                availability_zone=zone,
                # Public IPs are given per task (assign_public_ip), never by default.
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-public-{zone}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}",
                subnet_id=public.id,
                route_table_id=public_routes.id,
                opts=child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=str(subnets[AZ_COUNT + index]),
                availability_zone=zone,
                tags={"Name": f"{name}-private-{zone}"},
                opts=child,
            )
            self.public_subnets.append(public)
            self.private_subnets.append(private)

        self.nat_gateways = self._nat_gateways(name, args.nat_gateway, child)
        self._private_routes(name, child)
        if args.flow_logs:
            self._flow_logs(name, args.log_retention_days, child)

        self.vpc_id = self.vpc.id
        self.public_subnet_ids = [s.id for s in self.public_subnets]
        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
            }
        )

    def _nat_gateways(
        self, name: str, mode: str, child: pulumi.ResourceOptions
    ) -> list[aws.ec2.NatGateway]:
        count = {"single": 1, "one_per_az": AZ_COUNT, "none": 0}[mode]
        gateways = []
        for index in range(count):
            eip = aws.ec2.Eip(f"{name}-nat-{index}", domain="vpc", opts=child)
            gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{index}",
                    allocation_id=eip.id,
                    subnet_id=self.public_subnets[index].id,
                    tags={"Name": f"{name}-nat-{index}"},
                    opts=child,
                )
            )
        return gateways

    def _flow_logs(self, name: str, retention_days: int, child: pulumi.ResourceOptions) -> None:
        """Accepted and rejected traffic of the whole VPC, for incident forensics."""
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs", retention_in_days=retention_days, opts=child
        )
        role = aws.iam.Role(f"{name}-flow-logs", assume_role_policy=FLOW_LOGS_TRUST, opts=child)
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "logs:CreateLogStream",
                                "logs:DescribeLogStreams",
                                "logs:PutLogEvents",
                            ],
                            "Resource": pulumi.Output.concat(log_group.arn, ":*"),
                        }
                    ],
                }
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            opts=child,
        )

    def _private_routes(self, name: str, child: pulumi.ResourceOptions) -> None:
        """Each private subnet routes to the NAT of its AZ, or the single NAT, or nowhere."""
        for index, subnet in enumerate(self.private_subnets):
            routes = []
            if self.nat_gateways:
                nat = self.nat_gateways[index % len(self.nat_gateways)]
                routes = [{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}]
            table = aws.ec2.RouteTable(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                routes=routes,
                tags={"Name": f"{name}-private-{index}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}",
                subnet_id=subnet.id,
                route_table_id=table.id,
                opts=child,
            )
