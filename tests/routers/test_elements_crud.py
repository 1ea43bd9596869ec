"""Element CRUD (spec/API.md §2.2–2.7) and the auth rules of the element routes (§1.3–1.5)."""

from __future__ import annotations

import pytest

FULL = {"text": "Sign up", "tag_name": "a", "attr_class": ["btn", "primary"], "href": "/signup", "attr_id": "cta",
        "nth_child": 1, "nth_of_type": 2, "attributes": {"attr__data-attr": "cta"}, "order": 0}
EMPTY = {"text": None, "tag_name": None, "attr_class": None, "href": None, "attr_id": None, "nth_child": None,
         "nth_of_type": None, "attributes": {}, "order": None}


def base(env) -> str:
    return f"/api/environments/{env.id}/elements/"


async def create(client, env, body=None, **kw):
    r = await client.post(base(env), json=FULL if body is None else body, headers=env.headers, **kw)
    assert r.status_code == 201, r.text
    return r.json()


class TestCreate:
    async def test_full_and_empty(self, client, env):
        created = await create(client, env)
        assert isinstance(created.pop("id"), int) and created == FULL
        empty = await create(client, env, {})
        empty.pop("id")
        assert empty == EMPTY

    async def test_explicit_nulls(self, client, env):
        # §2.4: `null` is allowed for every field but `attributes` (it once hit the length check: a 500).
        body = {k: v for k, v in EMPTY.items() if k != "attributes"}
        created = await create(client, env, body)
        created.pop("id")
        assert created == EMPTY
        element = await create(client, env)
        r = await client.patch(f"{base(env)}{element['id']}/", json={"text": None, "tag_name": None}, headers=env.headers)
        assert r.status_code == 200 and r.json()["text"] is None and r.json()["tag_name"] is None
        assert r.json()["href"] == FULL["href"]

    async def test_coercions_and_ignored_fields(self, client, env):
        created = await create(client, env, {"text": 5, "attr_class": [1, "b"], "nth_child": "3", "id": 999,
                                             "unknown": True})
        assert created["text"] == "5" and created["attr_class"] == ["1", "b"] and created["nth_child"] == 3
        assert created["id"] != 999

    async def test_form_and_multipart_bodies(self, client, env):
        r = await client.post(base(env), data={"text": "hi", "nth_child": "4", "attr_class": ["a", "b"],
                                               "attributes": '{"attr__x": "1"}'}, headers=env.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["text"], body["nth_child"], body["attr_class"], body["attributes"]) == ("hi", 4, ["a", "b"], {"attr__x": "1"})
        r = await client.post(base(env), data={"tag_name": "div"}, files={"ignored": ("f.txt", b"x")}, headers=env.headers)
        assert r.status_code == 201, r.text
        assert r.json()["tag_name"] == "div"

    @pytest.mark.parametrize("body, code, detail, attr", [
        ({"text": True}, "invalid_input", "Not a valid string.", "text"),
        ({"tag_name": {"a": 1}}, "invalid_input", "Not a valid string.", "tag_name"),
        ({"href": ["x"]}, "invalid_input", "Not a valid string.", "href"),
        ({"text": "x" * 10_001}, "max_length", "Ensure this field has no more than 10000 characters.", "text"),
        ({"tag_name": "x" * 1_001}, "max_length", "Ensure this field has no more than 1000 characters.", "tag_name"),
        ({"attr_class": ["ok", "y" * 201]}, "max_length", "Ensure this field has no more than 200 characters.",
         "attr_class__1"),
        ({"attr_class": "btn"}, "not_a_list", 'Expected a list of items but got type "str".', "attr_class"),
        ({"nth_child": "abc"}, "invalid_input", "A valid integer is required.", "nth_child"),
        ({"nth_of_type": 1.5}, "invalid_input", "A valid integer is required.", "nth_of_type"),
        ({"order": True}, "invalid_input", "A valid integer is required.", "order"),
        ({"attributes": None}, "null", "This field may not be null.", "attributes"),
        ({"order": 2**31}, "max_value", "Ensure this value is less than or equal to 2147483647.", "order"),
        ({"text": "a\x00b"}, "null_characters_not_allowed", "Null characters are not allowed.", "text"),
        ({"attributes": {"k": ["\x00"]}}, "null_characters_not_allowed", "Null characters are not allowed.",
         "attributes"),
    ])
    async def test_validation(self, client, env, body, code, detail, attr):
        r = await client.post(base(env), json=body, headers=env.headers)
        assert r.status_code == 400
        assert r.json() == {"type": "validation_error", "code": code, "detail": detail, "attr": attr}

    async def test_first_error_only_and_not_a_dict(self, client, env):
        r = await client.post(base(env), json={"text": True, "nth_child": "x"}, headers=env.headers)
        assert r.json()["attr"] == "text"
        r = await client.post(base(env), json=[1, 2], headers=env.headers)
        assert r.status_code == 400 and r.json()["type"] == "validation_error"

    async def test_malformed_json(self, client, env):
        r = await client.post(base(env), content=b"{nope", headers={**env.headers, "Content-Type": "application/json"})
        assert r.status_code == 400
        assert r.json()["type"] == "invalid_request" and r.json()["code"] == "parse_error"


class TestReadUpdateDelete:
    async def test_list_in_id_order_with_pagination(self, client, env):
        ids = [(await create(client, env, {"text": f"t{i}"}))["id"] for i in range(3)]
        r = await client.get(base(env), params={"limit": 2}, headers=env.headers)
        body = r.json()
        assert body["count"] == 3 and [e["id"] for e in body["results"]] == ids[:2]
        assert "offset=2" in body["next"] and body["previous"] is None
        body = (await client.get(base(env), params={"limit": 2, "offset": 2}, headers=env.headers)).json()
        assert [e["id"] for e in body["results"]] == ids[2:] and body["next"] is None and body["previous"]
        body = (await client.get(base(env), params={"limit": "abc", "offset": "-4"}, headers=env.headers)).json()
        assert len(body["results"]) == 3

    async def test_retrieve_patch_put_delete(self, client, env):
        created = await create(client, env)
        url = f"{base(env)}{created['id']}/"
        assert (await client.get(url, headers=env.headers)).json() == created
        r = await client.patch(url, json={"text": "Changed", "attr_class": None}, headers=env.headers)
        assert r.status_code == 200 and r.json() == {**created, "text": "Changed", "attr_class": None}
        r = await client.put(url.rstrip("/"), json={"order": 7}, headers=env.headers)
        assert r.status_code == 200 and r.json()["order"] == 7 and r.json()["text"] == "Changed"
        r = await client.patch(url, json={"attributes": None}, headers=env.headers)
        assert r.status_code == 400 and r.json()["attr"] == "attributes"
        r = await client.delete(url, headers=env.headers)
        assert r.status_code == 204 and r.content == b""
        assert (await client.get(url, headers=env.headers)).status_code == 404
        assert (await client.delete(url, headers=env.headers)).status_code == 404

    @pytest.mark.parametrize("element_id", ["abc", "0", "99999999", "9999999999999", "1.5"])
    async def test_unknown_ids_are_404(self, client, env, element_id):
        r = await client.get(f"{base(env)}{element_id}/", headers=env.headers)
        assert r.status_code == 404
        assert r.json() == {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}

    async def test_other_environment_elements_are_404(self, client, env, other_env):
        theirs = await create(client, other_env)
        url = f"{base(env)}{theirs['id']}/"
        for method in ("GET", "PATCH", "PUT", "DELETE"):
            r = await client.request(method, url, json={"text": "x"} if method in ("PATCH", "PUT") else None,
                                     headers=env.headers)
            assert r.status_code == 404, method
        assert (await client.get(base(env), headers=env.headers)).json()["count"] == 0
        assert (await client.get(f"{base(other_env)}{theirs['id']}/", headers=other_env.headers)).json()["text"] == "Sign up"


ROUTES = [("GET", ""), ("POST", ""), ("GET", "1/"), ("PATCH", "1/"), ("PUT", "1/"), ("DELETE", "1/"),
          ("GET", "stats/"), ("GET", "values/?key=text")]


class TestAuth:
    @pytest.mark.parametrize("method, path", ROUTES)
    async def test_missing_credentials_are_401_with_challenge(self, client, env, method, path):
        r = await client.request(method, base(env) + path, json={} if method in ("POST", "PATCH", "PUT") else None)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == \
            'Bearer resource_metadata="http://testserver/.well-known/oauth-protected-resource"'
        assert r.json() == {"type": "authentication_error", "code": "not_authenticated",
                            "detail": "Authentication credentials were not provided.", "attr": None}

    @pytest.mark.parametrize("method, path", ROUTES)
    async def test_invalid_key_is_401(self, client, env, method, path):
        r = await client.request(method, base(env) + path, headers={"Authorization": "Bearer phx_not_a_real_key"})
        assert r.status_code == 401 and "www-authenticate" in r.headers
        assert r.json()["code"] == "authentication_failed"
        assert r.json()["detail"] == "Personal API key found in request Authorization header is invalid."

    async def test_scopes(self, client, env):
        read = {"Authorization": f"Bearer {await env.make_key(['element:read'])}"}
        write = {"Authorization": f"Bearer {await env.make_key(['element:write'])}"}
        other = {"Authorization": f"Bearer {await env.make_key(['insight:read'])}"}
        assert (await client.get(base(env), headers=read)).status_code == 200
        assert (await client.get(base(env) + "stats/", headers=read)).status_code == 200
        assert (await client.get(base(env) + "values/?key=text", headers=read)).status_code == 200
        r = await client.post(base(env), json={}, headers=read)
        assert r.status_code == 403 and r.json()["detail"] == "API key missing required scope 'element:write'"
        assert (await client.post(base(env), json={}, headers=write)).status_code == 201
        assert (await client.get(base(env) + "stats/", headers=write)).status_code == 200  # write implies read
        r = await client.get(base(env) + "stats/", headers=other)
        assert r.status_code == 403 and r.json()["detail"] == "API key missing required scope 'element:read'"

    async def test_environment_resolution(self, client, env, other_env):
        r = await client.get(f"/api/environments/{other_env.id}/elements/", headers=env.headers)
        assert r.status_code == 403 and r.json()["detail"] == "You don't have access to the project."
        r = await client.get("/api/environments/987654321/elements/stats/", headers=env.headers)
        assert r.status_code == 404 and r.json()["detail"] == "Project not found."


class TestMethods:
    @pytest.mark.parametrize("method, path", [("DELETE", "stats/"), ("POST", "values/"), ("PATCH", ""),
                                              ("POST", "1/")])
    async def test_wrong_method_after_authentication(self, client, env, method, path):
        r = await client.request(method, base(env) + path)
        assert r.status_code == 401
        r = await client.request(method, base(env) + path, headers=env.headers)
        assert r.status_code == 405
        assert r.json() == {"type": "invalid_request", "code": "method_not_allowed",
                            "detail": f'Method "{method}" not allowed.', "attr": None}


class TestFormat:
    @pytest.mark.parametrize("path", ["", "stats/", "values/?key=text&", "{id}/"])
    async def test_only_json_can_be_produced(self, client, env, path):
        # §1.1: element routes speak JSON only; `format=csv` (an insight-only format) is a 404 too.
        path = path.format(id=(await create(client, env))["id"])
        sep = "" if path.endswith("&") else "?"
        for fmt in ("csv", "xml"):
            r = await client.get(f"{base(env)}{path}{sep}format={fmt}", headers=env.headers)
            assert r.status_code == 404, (path, fmt)
            assert r.json() == {"type": "invalid_request", "code": "not_found", "detail": "Not found.", "attr": None}
        r = await client.get(f"{base(env)}{path}{sep}format=json", headers=env.headers)
        assert r.status_code == 200

    async def test_accept_header_json_only(self, client, env):
        # §1.1/§1.6: an Accept header no renderer satisfies is a 406 (`invalid_request`/`not_acceptable`).
        r = await client.get(base(env), headers={**env.headers, "Accept": "text/csv"})
        assert r.status_code == 406
        assert r.json() == {"type": "invalid_request", "code": "not_acceptable",
                            "detail": "Could not satisfy the request Accept header.", "attr": None}
        for accept in ("application/json", "application/*", "text/html,application/xml;q=0.9,*/*;q=0.8"):
            r = await client.get(base(env), headers={**env.headers, "Accept": accept})
            assert r.status_code == 200 and r.headers["content-type"] == "application/json", accept
