"""Every v0/v1 decoding path of INGESTION.md §2, on the pure decoder."""

from __future__ import annotations

import base64
import gzip
import zlib
from urllib.parse import quote

import orjson
import pytest
from lzstring import LZString

from app.ingestion.decode import LIMIT_E, decode_v0, decode_v1, looks_base64
from app.ingestion.errors import CaptureInvalid, CaptureTooLarge

EVENT = {"event": "e", "distinct_id": "d", "properties": {"k": "v ü"}}


def run(body: bytes = b"", *, kind: str = "e", query: dict | None = None, ctype: str = "application/json",
        encoding: str = "", limit: int = LIMIT_E):
    return decode_v0(path_kind=kind, body=body, query=query or {}, content_type=ctype, content_encoding=encoding,
                     limit=limit)


class TestShapes:
    def test_single_event(self):
        assert run(orjson.dumps(EVENT)).events == [EVENT]

    def test_array(self):
        assert run(orjson.dumps([EVENT, EVENT])).events == [EVENT, EVENT]

    def test_envelope(self):
        out = run(orjson.dumps({"api_key": "phc_x", "batch": [EVENT], "sent_at": "2026-01-01T00:00:00Z"}))
        assert out.events == [EVENT]
        assert out.envelope["api_key"] == "phc_x"

    def test_engage_without_event_is_identify(self):
        out = run(orjson.dumps({"distinct_id": "d", "$set": {"a": 1}}), kind="engage")
        assert out.events[0]["event"] == "$identify"

    def test_object_without_event_elsewhere_is_400(self):
        with pytest.raises(CaptureInvalid) as exc:
            run(orjson.dumps({"distinct_id": "d"}))
        assert exc.value.code == "invalid_shape"

    @pytest.mark.parametrize("body", [b"[]", b'{"batch": []}'])
    def test_empty_batch_is_400(self, body):
        with pytest.raises(CaptureInvalid) as exc:
            run(body)
        assert exc.value.code == "empty_batch"

    def test_non_object_event_is_400(self):
        with pytest.raises(CaptureInvalid):
            run(b'[1, 2]')

    @pytest.mark.parametrize("body", [b"not json", b"{", b"\xff\xfe"])
    def test_invalid_json_is_400(self, body):
        with pytest.raises(CaptureInvalid) as exc:
            run(body)
        assert exc.value.code == "invalid_json"

    def test_missing_payload_is_400(self):
        with pytest.raises(CaptureInvalid) as exc:
            run(b"")
        assert exc.value.code == "no_data"


class TestEncodings:
    def test_gzip_with_hint(self):
        assert run(gzip.compress(orjson.dumps([EVENT])), query={"compression": "gzip-js"}).events == [EVENT]

    def test_gzip_without_hint_text_plain(self):
        assert run(gzip.compress(orjson.dumps([EVENT])), ctype="text/plain").events == [EVENT]

    def test_gzip_content_encoding_header(self):
        assert run(gzip.compress(orjson.dumps([EVENT])), encoding="gzip").events == [EVENT]

    def test_whole_body_base64(self):
        assert run(base64.b64encode(orjson.dumps([EVENT])), ctype="text/plain").events == [EVENT]

    def test_form_base64(self):
        data = base64.b64encode(orjson.dumps([EVENT])).decode()
        body = f"data={quote(data)}&compression=base64".encode()
        out = run(body, ctype="application/x-www-form-urlencoded")
        assert out.events == [EVENT]

    def test_form_base64_plus_signs_turned_into_spaces(self):
        doc = [{"event": "e", "distinct_id": "d", "properties": {"x": "?>?>?>"}}]
        data = base64.b64encode(orjson.dumps(doc)).decode()
        assert "+" in data
        # a client that did not url-encode: `+` arrives as space after form decoding
        out = run(f"data={data}".encode(), ctype="application/x-www-form-urlencoded")
        assert out.events == doc

    def test_form_token_and_plain_json_data(self):
        body = f"data={quote(orjson.dumps(EVENT).decode())}&api_key=phc_form".encode()
        out = run(body, ctype="application/x-www-form-urlencoded")
        assert out.events == [EVENT] and out.form_token == "phc_form"

    def test_lz64_form(self):
        data = LZString().compressToBase64(orjson.dumps([EVENT]).decode())
        body = f"data={quote(data)}&compression=lz64".encode()
        assert run(body, ctype="application/x-www-form-urlencoded").events == [EVENT]

    def test_lz64_garbage_is_400(self):
        with pytest.raises(CaptureInvalid):
            run(b"data=%21%21%21&compression=lz64", ctype="application/x-www-form-urlencoded")

    def test_get_data_query_param(self):
        data = base64.b64encode(orjson.dumps(EVENT)).decode()
        assert run(b"", query={"data": data}).events == [EVENT]

    def test_unknown_hint_is_ignored(self):
        assert run(orjson.dumps([EVENT]), query={"compression": "zstd-maybe"}).events == [EVENT]

    def test_bad_gzip_is_400(self):
        with pytest.raises(CaptureInvalid) as exc:
            run(b"\x1f\x8b\x08" + b"garbage" * 10, ctype="text/plain")
        assert exc.value.code == "invalid_compression"

    def test_decompression_bomb_is_413(self):
        bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]")
        assert len(bomb) < LIMIT_E
        with pytest.raises(CaptureTooLarge):
            run(bomb, query={"compression": "gzip"})

    def test_lz64_raw_body_with_query_hint(self):
        # lz-string output is base64 text: it must reach the lz-string decoder as sent, even when
        # its length makes it look like whole-body base64.
        for n in range(8):
            doc = [{**EVENT, "event": "x" * n}]
            data = LZString().compressToBase64(orjson.dumps(doc).decode()).encode()
            assert run(data, query={"compression": "lz64"}, ctype="text/plain").events == doc

    def test_get_data_plus_signs_turned_into_spaces(self):
        doc = {"event": "e", "distinct_id": "d", "properties": {"x": "?>?>?>"}}
        data = base64.b64encode(orjson.dumps(doc)).decode()
        assert "+" in data
        assert run(b"", query={"data": data.replace("+", " ")}).events == [doc]

    @pytest.mark.parametrize("encode", [
        lambda raw: base64.b64encode(raw).rstrip(b"="),
        lambda raw: base64.urlsafe_b64encode(raw),
        lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"="),
    ], ids=["unpadded", "urlsafe", "urlsafe-unpadded"])
    def test_lenient_base64(self, encode):
        doc = {"event": "e", "distinct_id": "d", "properties": {"x": "?>?>?>~~~" * 3}}
        data = encode(orjson.dumps(doc))
        assert run(b"", query={"data": data.decode()}).events == [doc]
        assert run(data, ctype="text/plain").events == [doc]
        assert run(b"", query={"data": data.decode(), "compression": "base64"}).events == [doc]
        form = f"data={quote(data.decode())}&compression=base64".encode()
        assert run(form, ctype="application/x-www-form-urlencoded").events == [doc]

    def test_form_gzip_as_base64_text(self):
        data = base64.b64encode(gzip.compress(orjson.dumps([EVENT]))).decode()
        body = f"data={quote(data)}&compression=gzip-js".encode()
        assert run(body, ctype="application/x-www-form-urlencoded").events == [EVENT]

    @pytest.mark.parametrize("hint", ["gzip-js", "base64"])
    def test_plain_json_under_a_stale_hint(self, hint):
        assert run(orjson.dumps([EVENT]), query={"compression": hint}).events == [EVENT]

    def test_looks_base64(self):
        assert looks_base64(b"eyJhIjoxfQ==")
        assert not looks_base64(b'{"a":1}')
        assert not looks_base64(b"a=b&c=d")


class TestV1:
    def test_plain_gzip_deflate(self):
        doc = {"created_at": "2026-01-01T00:00:00Z", "batch": [EVENT]}
        raw = orjson.dumps(doc)
        assert decode_v1(raw, "", LIMIT_E) == doc
        assert decode_v1(gzip.compress(raw), "gzip", LIMIT_E) == doc
        assert decode_v1(zlib.compress(raw), "deflate", LIMIT_E) == doc

    def test_unsupported_encoding_is_415(self):
        with pytest.raises(CaptureInvalid) as exc:
            decode_v1(b"{}", "compress", LIMIT_E)
        assert exc.value.status_code == 415

    def test_missing_batch_is_400(self):
        with pytest.raises(CaptureInvalid):
            decode_v1(b'{"created_at": "x"}', "", LIMIT_E)
