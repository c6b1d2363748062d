"""Network component: two AZs, public/private subnets, NAT per option."""

from __future__ import annotations

import pytest

SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
NAT = "aws:ec2/natGateway:NatGateway"


def test_two_public_and_two_private_subnets_in_distinct_zones(default):
    subnets = default.children_of_type("Network", SUBNET)
    public = [s for s in subnets if "-public-" in s.name]
    private = [s for s in subnets if "-private-" in s.name]
    assert len(public) == len(private) == 2
    assert len({s.get("availabilityZone") for s in public}) == 2
    assert {s.get("availabilityZone") for s in public} == {
        s.get("availabilityZone") for s in private
    }
    cidrs = [s.get("cidrBlock") for s in subnets]
    assert len(set(cidrs)) == len(cidrs)


def test_public_route_table_goes_to_the_internet_gateway(default):
    (public,) = [t for t in default.of_type(ROUTE_TABLE) if t.name.endswith("-public")]
    (route,) = public.get("routes")
    assert route["cidrBlock"] == "0.0.0.0/0"
    assert route["gatewayId"].startswith("internetgateway-")


@pytest.mark.parametrize("mode", ["single", "one_per_az", "none"])
def test_private_routes_follow_the_nat_mode(recorder, mode):
    deployment = recorder.get({"natGateway": mode})
    private = [t for t in deployment.of_type(ROUTE_TABLE) if "-private-" in t.name]
    nat_targets = [r["natGatewayId"] for t in private for r in t.get("routes") or []]
    if mode == "none":
        assert nat_targets == []
    elif mode == "single":
        assert len(nat_targets) == 2 and len(set(nat_targets)) == 1
    else:
        assert len(set(nat_targets)) == 2, "each AZ must use its own NAT"
    nats = deployment.of_type(NAT)
    public_ids = {s.id for s in deployment.of_type(SUBNET) if "-public-" in s.name}
    assert all(n.get("subnetId") in public_ids for n in nats)
