"""The items API: round trips, pagination and every validation error, on a real database."""

import httpx
import pytest

ITEM = {"name": "Widget", "description": "A useful widget", "price": 9.99}


async def create(client: httpx.AsyncClient, **overrides: object) -> dict:
    response = await client.post("/items", json={**ITEM, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


async def test_created_item_is_returned_by_id_and_listed(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert created["name"] == "Widget"
    assert created["price"] == "9.99"
    assert created["id"] >= 1
    assert created["created_at"]

    fetched = await client.get(f"/items/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created

    listed = await client.get("/items")
    assert created in listed.json()["items"]


async def test_description_is_optional(client: httpx.AsyncClient) -> None:
    created = await create(client, description=None)
    assert created["description"] is None


@pytest.mark.parametrize(
    "text",
    ["Robert'); DROP TABLE items;--", "1 OR 1=1", "ünïcödé ✓ 日本語", "<script>x</script>"],
)
async def test_text_is_stored_verbatim(client: httpx.AsyncClient, text: str) -> None:
    created = await create(client, name=text[:100], description=text)
    fetched = (await client.get(f"/items/{created['id']}")).json()
    assert (fetched["name"], fetched["description"]) == (text[:100], text)


async def test_price_accepts_two_decimal_string(client: httpx.AsyncClient) -> None:
    created = await create(client, price="12.50")
    assert created["price"] == "12.50"


async def test_list_is_ordered_and_paginated(client: httpx.AsyncClient) -> None:
    ids = [(await create(client, name=f"item {n}"))["id"] for n in range(5)]

    everything = (await client.get("/items", params={"limit": 100})).json()
    listed_ids = [item["id"] for item in everything["items"]]
    assert listed_ids == sorted(listed_ids)
    start = listed_ids.index(ids[0])

    page = (await client.get("/items", params={"limit": 2, "offset": start + 1})).json()
    assert [item["id"] for item in page["items"]] == ids[1:3]
    assert (page["limit"], page["offset"]) == (2, start + 1)


async def test_list_defaults_to_twenty(client: httpx.AsyncClient) -> None:
    for n in range(21):
        await create(client, name=f"bulk {n}")
    page = (await client.get("/items")).json()
    assert page["limit"] == 20
    assert len(page["items"]) == 20


async def test_page_past_the_end_is_empty(client: httpx.AsyncClient) -> None:
    page = (await client.get("/items", params={"offset": 1_000_000})).json()
    assert page["items"] == []


async def test_unknown_item_is_404_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/999999999")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "999999999" in error["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**ITEM, "name": ""}, "name"),
        ({**ITEM, "name": "x" * 101}, "name"),
        ({**ITEM, "name": "nul\x00byte"}, "name"),
        ({**ITEM, "name": 42}, "name"),
        ({**ITEM, "description": "d" * 1001}, "description"),
        ({**ITEM, "price": -1}, "price"),
        ({**ITEM, "price": 1.005}, "price"),
        ({**ITEM, "price": "cheap"}, "price"),
        ({**ITEM, "price": 1e12}, "price"),
        ({**ITEM, "price": True}, "price"),
        ({**ITEM, "price": "1.5e2"}, "price"),
        ({**ITEM, "price": " 1.50"}, "price"),
        ({**ITEM, "price": "-1"}, "price"),
        ({**ITEM, "price": ""}, "price"),
        ({"name": "no price"}, "price"),
        ({**ITEM, "colour": "red"}, "colour"),
    ],
)
async def test_invalid_item_is_422_naming_the_field(
    client: httpx.AsyncClient, payload: dict, field: str
) -> None:
    response = await client.post("/items", json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(field in detail["loc"] for detail in error["details"])


@pytest.mark.parametrize("body", [b"{not json", b'{"name": "x", "price": 1', b"\xff\xfe"])
async def test_malformed_json_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/items", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"null"])
async def test_non_object_body_is_422(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/items", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": -1},
        {"limit": "ten"},
        {"offset": -1},
        {"offset": 1_000_001},
    ],
)
async def test_out_of_range_pagination_is_422(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get("/items", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["details"]


@pytest.mark.parametrize("item_id", ["0", "-1", "abc", str(2**63), "1.5"])
async def test_bad_item_id_is_422(client: httpx.AsyncClient, item_id: str) -> None:
    response = await client.get(f"/items/{item_id}")
    assert response.status_code == 422


# --- versions, ETag and If-Match -------------------------------------------------------------


async def test_item_carries_its_version_as_a_strong_etag(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json=ITEM)
    assert response.json()["version"] == 1
    assert response.headers["etag"] == '"1"'
    fetched = await client.get(f"/items/{response.json()['id']}")
    assert fetched.headers["etag"] == '"1"'


async def test_patch_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    created = await create(client)
    response = await client.patch(f"/items/{created['id']}", json={"price": "12.50"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated == {**created, "price": "12.50", "version": 2}
    assert response.headers["etag"] == '"2"'
    assert (await client.get(f"/items/{created['id']}")).json() == updated


async def test_patch_can_clear_the_description(client: httpx.AsyncClient) -> None:
    created = await create(client)
    response = await client.patch(
        f"/items/{created['id']}", json={"description": None, "name": "Renamed"}
    )
    assert (response.json()["description"], response.json()["name"]) == (None, "Renamed")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body"),
        ({"colour": "red"}, "colour"),
        ({"name": "ok", "id": 5}, "id"),
        ({"version": 9}, "version"),
        ({"name": None}, "name"),
        ({"price": None}, "price"),
        ({"name": ""}, "name"),
        ({"price": -1}, "price"),
        ({"price": "1.005"}, "price"),
        ({"description": "d" * 1001}, "description"),
    ],
)
async def test_invalid_patch_is_422_naming_the_field(
    client: httpx.AsyncClient, payload: dict, field: str
) -> None:
    created = await create(client)
    response = await client.patch(f"/items/{created['id']}", json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(field in detail["loc"] for detail in error["details"]), error
    assert (await client.get(f"/items/{created['id']}")).json() == created


async def test_delete_is_204_and_the_item_is_gone(client: httpx.AsyncClient) -> None:
    created = await create(client)
    response = await client.delete(f"/items/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    for method in ("GET", "DELETE"):
        assert (await client.request(method, f"/items/{created['id']}")).status_code == 404
    patched = await client.patch(f"/items/{created['id']}", json={"name": "x"})
    assert patched.status_code == 404
    assert patched.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_write_to_a_missing_item_is_404(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/items/999999999", json={"name": "x"})
    assert response.status_code == 404
    assert "999999999" in response.json()["error"]["message"]


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@pytest.mark.parametrize("item_id", ["0", "-1", str(2**63), "abc"])
async def test_write_to_a_bad_id_is_422(
    client: httpx.AsyncClient, method: str, item_id: str
) -> None:
    response = await client.request(method, f"/items/{item_id}", json={"name": "x"})
    assert response.status_code == 422
    assert any("item_id" in d["loc"] for d in response.json()["error"]["details"])


@pytest.mark.parametrize("if_match", ['"1"', "*", ' "7", "1" ', 'W/"5", "1"', "\t*\t"])
async def test_if_match_naming_the_version_applies(
    client: httpx.AsyncClient, if_match: str
) -> None:
    created = await create(client)
    url = f"/items/{created['id']}"
    response = await client.patch(url, json={"name": "new"}, headers={"If-Match": if_match})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    deleted = await client.delete(url, headers={"If-Match": if_match.replace('"1"', '"2"')})
    assert deleted.status_code == 204


STALE_IF_MATCH = ['"2"', 'W/"1"', '"01"', '"abc"', '""', '"99999999999999999999"', '"2", "3"']
MALFORMED_IF_MATCH = [
    "1",
    '"1',
    '"1",',
    ',"1"',
    "W/1",
    '"a"b"',
    "**",
    '* , "1"',
    "",
    " ",
    'w/"1"',
    '"1 "',
]


@pytest.mark.parametrize(
    ("if_match", "says"),
    [
        *[(value, '"1"') for value in STALE_IF_MATCH],  # the current ETag, to catch up with
        *[(value, "Malformed If-Match") for value in MALFORMED_IF_MATCH],
    ],
)
async def test_if_match_naming_another_version_or_malformed_is_412_and_writes_nothing(
    client: httpx.AsyncClient, if_match: str, says: str
) -> None:
    created = await create(client)
    url = f"/items/{created['id']}"
    for method in ("PATCH", "DELETE"):
        response = await client.request(
            method, url, json={"name": "new"}, headers={"If-Match": if_match}
        )
        assert response.status_code == 412, response.text
        error = response.json()["error"]
        assert error["code"] == "precondition_failed"
        assert says in error["message"]
    assert (await client.get(url)).json() == created


async def test_a_stale_if_match_loses_a_race(client: httpx.AsyncClient) -> None:
    """Two clients read version 1; the first write wins, the second gets 412."""
    created = await create(client)
    url = f"/items/{created['id']}"
    first = await client.patch(url, json={"name": "first"}, headers={"If-Match": '"1"'})
    second = await client.patch(url, json={"name": "second"}, headers={"If-Match": '"1"'})
    assert (first.status_code, second.status_code) == (200, 412)
    assert (await client.get(url)).json()["name"] == "first"


async def test_several_if_match_lines_are_one_list(client: httpx.AsyncClient) -> None:
    created = await create(client)
    url = f"/items/{created['id']}"
    lines = [("If-Match", '"7"'), ("If-Match", '"1"')]
    response = await client.patch(url, json={"name": "new"}, headers=lines)
    assert response.status_code == 200, response.text
    stale = await client.delete(url, headers=[("If-Match", '"7"'), ("If-Match", '"1"')])
    assert stale.status_code == 412  # the item is at "2" now
