"""Chain serialisation and parsing (spec/API.md §2.1, INGESTION.md §11) over a corpus of
spec examples and real posthog-js shapes."""

from __future__ import annotations

import pytest

from app.elements_chain import (
    ELEMENT_KEYS, MAX_CHAIN_LENGTH, attribute_filter, chain_from_elements, element_from_sdk, elements_to_chain,
    parse_chain, split_chain,
)
from tests.routers.test_elements_data import BUY, SIGNUP

SPEC_EXAMPLE = ('a:attr__href="/signup"href="/signup"nth-child="1"nth-of-type="1"text="Create one here.";'
                'p:nth-child="8"nth-of-type="1";form.form-signin:attr__action="/login"attr__class="form-signin"'
                'attr__method="post"nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"')
INGESTION_EXAMPLE = ('a.btn.primary:attr__class="btn primary"attr__href="/signup"attr__id="cta"attr_id="cta"'
                     'href="/signup"nth-child="1"nth-of-type="1"text="Sign up";div.hero:attr__class="hero"'
                     'nth-child="2"nth-of-type="1";body:nth-child="2"nth-of-type="1"')


def el(**fields):
    base = dict.fromkeys(ELEMENT_KEYS)
    base["attributes"] = {}
    base.update(fields)
    return base


class TestSerialise:
    def test_spec_example_from_sdk_elements(self):
        sdk = [
            {"tag_name": "a", "$el_text": "Create one here.", "attr__href": "/signup", "nth_child": 1, "nth_of_type": 1},
            {"tag_name": "p", "nth_child": 8, "nth_of_type": 1},
            {"tag_name": "form", "attr__class": "form-signin", "attr__action": "/login", "attr__method": "post",
             "nth_child": 1, "nth_of_type": 1},
            {"tag_name": "body", "nth_child": 2, "nth_of_type": 1},
        ]
        assert chain_from_elements(sdk) == SPEC_EXAMPLE

    def test_ingestion_example_sorted_classes_and_attributes(self):
        sdk = [
            {"tag_name": "a", "$el_text": "Sign up", "attr__class": "primary btn", "attr__id": "cta",
             "attr__href": "/signup", "nth_child": 1, "nth_of_type": 1},
            {"tag_name": "div", "attr__class": ["hero"], "nth_child": 2, "nth_of_type": 1},
            {"tag_name": "body", "nth_child": 2, "nth_of_type": 1},
        ]
        assert chain_from_elements(sdk).replace('attr__class="primary btn"', 'attr__class="btn primary"') == INGESTION_EXAMPLE

    def test_quotes_escaped_and_removed_from_classes(self):
        sdk = [{"tag_name": "button", "$el_text": 'Say "hi"; ok', "attr__type": "submit", "attr__class": 'x"y',
                "nth_child": 3, "nth_of_type": 2}]
        assert chain_from_elements(sdk) == (
            'button.xy:attr__class="x\\"y"attr__type="submit"nth-child="3"nth-of-type="2"text="Say \\"hi\\"; ok"'
        )

    def test_no_position_gives_zeros(self):
        assert chain_from_elements([{"tag_name": "img"}]) == 'img:nth-child="0"nth-of-type="0"'

    def test_text_and_href_cut(self):
        element = element_from_sdk({"tag_name": "a", "$el_text": "t" * 500, "attr__href": "h" * 3000})
        assert len(element["text"]) == 400 and len(element["href"]) == 2048

    def test_attribute_named_like_canonical_key_is_written_once(self):
        chain = elements_to_chain([el(tag_name="a", text="x", attributes={"text": "y"})])
        assert chain == 'a:nth-child="0"nth-of-type="0"text="y"'


class TestParse:
    def test_spec_example(self):
        elements = parse_chain(SPEC_EXAMPLE)
        assert [e["tag_name"] for e in elements] == ["a", "p", "form", "body"]
        assert elements[0] == el(tag_name="a", text="Create one here.", href="/signup", nth_child=1, nth_of_type=1,
                                 attributes={"attr__href": "/signup"}, order=0)
        assert elements[2]["attr_class"] == ["form-signin"]
        assert elements[2]["attributes"] == {"attr__action": "/login", "attr__class": "form-signin", "attr__method": "post"}
        assert [e["order"] for e in elements] == [0, 1, 2, 3]
        assert list(elements[0]) == list(ELEMENT_KEYS)

    def test_ingestion_example(self):
        first, _, body = parse_chain(INGESTION_EXAMPLE)
        assert first == el(tag_name="a", attr_class=["btn", "primary"], href="/signup", attr_id="cta", text="Sign up",
                           nth_child=1, nth_of_type=1, order=0,
                           attributes={"attr__class": "btn primary", "attr__href": "/signup", "attr__id": "cta"})
        assert body == el(tag_name="body", nth_child=2, nth_of_type=1, order=2)

    def test_escaped_quotes_and_semicolon_in_text_stay_escaped(self):
        (only,) = parse_chain('button:attr__type="submit"nth-child="3"nth-of-type="2"text="Say \\"hi\\"; ok"')
        assert only["text"] == 'Say \\"hi\\"; ok'
        assert only["attributes"] == {"attr__type": "submit"}

    def test_colon_inside_class_names(self):
        first = parse_chain(BUY)[0]
        assert first["tag_name"] == "button"
        assert first["attr_class"] == ["buy", "hover:bg-red"]
        assert first["text"] == 'Buy \\"now\\"'
        assert first["attributes"]["attr__data-attr"] == "buy-button"

    def test_tailwind_variants_with_many_colons(self):
        chain = 'div.md:hover:bg-blue-500.sm:p-4.w-1/2:attr__class="sm:p-4 md:hover:bg-blue-500 w-1/2"nth-child="1"nth-of-type="1"'
        (only,) = parse_chain(chain)
        assert only["attr_class"] == ["md:hover:bg-blue-500", "sm:p-4", "w-1/2"]
        assert only["attributes"] == {"attr__class": "sm:p-4 md:hover:bg-blue-500 w-1/2"}

    def test_svg_elements(self):
        chain = ('path:attr__d="M0 0L10 10"attr__fill="none"nth-child="1"nth-of-type="1";'
                 'svg.icon:attr__class="icon"attr__viewBox="0 0 24 24"nth-child="1"nth-of-type="1";'
                 'button:nth-child="2"nth-of-type="1"')
        path, svg, button = parse_chain(chain)
        assert path["tag_name"] == "path" and path["attributes"] == {"attr__d": "M0 0L10 10", "attr__fill": "none"}
        assert svg["attributes"]["attr__viewBox"] == "0 0 24 24"
        assert button["order"] == 2

    def test_no_attributes_and_no_tag(self):
        assert parse_chain("div.a.b") == [el(tag_name="div", attr_class=["a", "b"], order=0)]
        assert parse_chain(':nth-child="1"nth-of-type="2"') == [el(nth_child=1, nth_of_type=2, order=0)]
        assert parse_chain("div.:nth-child=\"1\"")[0]["attr_class"] is None
        assert parse_chain("") == []

    def test_unicode_and_backslashes(self):
        chain = elements_to_chain([el(tag_name="span", text="Größe ✓ 日本 \\ end", attributes={"attr__title": "é\\n"})])
        (only,) = parse_chain(chain)
        assert only["text"] == "Größe ✓ 日本 \\ end"
        assert only["attributes"] == {"attr__title": "é\\n"}

    def test_value_ending_in_backslash_swallows_next_pair(self):
        (only,) = parse_chain('a:attr__x="a\\"href="/h"nth-child="1"')
        assert only["attributes"] == {"attr__x": 'a\\"href='}
        assert only["href"] is None and only["nth_child"] is None

    def test_bad_integer_positions_are_null(self):
        assert parse_chain('a:nth-child="x"nth-of-type="2"')[0]["nth_child"] is None
        odd = parse_chain('a:nth-child="²"nth-of-type="99999999999999999999"')[0]
        assert odd["nth_child"] is None and odd["nth_of_type"] is None

    def test_split_ignores_separators_inside_quotes(self):
        assert split_chain('a:text="x;y z";b:nth-child="1"') == ['a:text="x;y z"', 'b:nth-child="1"']

    def test_unterminated_quote_does_not_hang_or_raise(self):
        elements = parse_chain('a:text="open;b:nth-child="1' + '\\' * 5000)
        assert elements[0]["tag_name"] == "a"


class TestRoundTrip:
    CORPUS = [
        el(tag_name="a", attr_class=["btn", "btn-primary"], text="Sign up", href="#signup", attr_id="signup",
           nth_child=1, nth_of_type=1, attributes={"attr__class": "btn btn-primary", "attr__href": "#signup"}),
        el(tag_name="button", attr_class=["hover:bg-red", "buy", "focus:ring-2"], text="Buy now", nth_child=3,
           nth_of_type=2, attributes={"attr__data-attr": "buy-button"}),
        el(tag_name="svg", attr_class=["h-4", "w-4"], nth_child=1, nth_of_type=1,
           attributes={"attr__viewBox": "0 0 20 20", "attr__aria-hidden": "true"}),
        el(tag_name="li", text="Ünïcödé — 你好 🙂", nth_child=12, nth_of_type=12),
        el(tag_name="input", attr_id="email", nth_child=2, nth_of_type=1,
           attributes={"attr__type": "email", "attr__placeholder": "you@example.com"}),
    ]

    @pytest.mark.parametrize("index", range(len(CORPUS)))
    def test_element_survives(self, index):
        original = dict(self.CORPUS[index], order=0)
        (parsed,) = parse_chain(elements_to_chain([original]))
        expected = dict(original, attr_class=sorted(original["attr_class"]) if original["attr_class"] else None)
        assert parsed == expected

    def test_chain_survives_and_is_stable(self):
        chain = elements_to_chain(self.CORPUS)
        parsed = parse_chain(chain)
        assert len(parsed) == len(self.CORPUS)
        assert elements_to_chain(parsed) == chain
        assert [p["order"] for p in parsed] == list(range(len(self.CORPUS)))

    def test_real_sdk_chains_reserialise_identically(self):
        for chain in (SIGNUP, SPEC_EXAMPLE, INGESTION_EXAMPLE):
            assert elements_to_chain(parse_chain(chain)) == chain

    def test_escaped_quotes_are_escaped_again(self):
        # Parsing keeps `\"` as two characters (§2.1), so serialising a parsed element escapes once more.
        again = elements_to_chain(parse_chain(BUY))
        assert again == BUY.replace('text="Buy \\"now\\""', 'text="Buy \\\\"now\\\\""')
        assert parse_chain(again)[0]["text"] == 'Buy \\\\"now\\\\"'


class TestLongChains:
    def test_two_hundred_elements(self):
        elements = [el(tag_name="div", attr_class=[f"c{i}"], nth_child=i, nth_of_type=1) for i in range(200)]
        chain = elements_to_chain(elements)
        assert len(chain) < MAX_CHAIN_LENGTH
        parsed = parse_chain(chain)
        assert len(parsed) == 200 and parsed[199]["attr_class"] == ["c199"] and parsed[199]["order"] == 199

    def test_cut_keeps_the_clicked_element_and_drops_ancestors(self):
        elements = [el(tag_name="div", text=f"t{i}-" + "x" * 100, nth_child=i, nth_of_type=1) for i in range(400)]
        chain = elements_to_chain(elements)
        assert len(chain) > MAX_CHAIN_LENGTH
        parsed = parse_chain(chain)
        assert parsed[0]["text"].startswith("t0-")
        assert 8192 // 150 < len(parsed) < 400
        last = parsed[-1]
        assert last["nth_child"] == len(parsed) - 1 and last["text"].endswith("x" * 100)  # whole, not a fragment

    def test_one_huge_element_keeps_the_raw_window(self):
        chain = 'a:nth-child="1"nth-of-type="1";div:text="' + "y" * 20_000 + '"'
        parsed = parse_chain(chain)
        assert parsed[0]["tag_name"] == "a"
        assert parsed[1]["tag_name"] == "div"  # the window ends inside it: no closing quote, no text
        assert parsed[1]["text"] is None

    def test_max_depth(self):
        assert [e["tag_name"] for e in parse_chain(SPEC_EXAMPLE, max_depth=2)] == ["a", "p"]


class TestAttributeFilter:
    def test_exact_and_glob(self):
        keep = attribute_filter("data-attr, data-*-id ,,")
        assert keep("attr__data-attr") and keep("attr__data-user-id") and keep("attr__data--id")
        assert not keep("attr__class") and not keep("data-attr") and not keep("attr__data-attrx")

    def test_star_keeps_all_attr_keys(self):
        keep = attribute_filter("*")
        assert keep("attr__anything") and not keep("other")

    def test_blank_is_no_filter_and_only_fifty_names_count(self):
        assert attribute_filter(" , ") is None and attribute_filter(None) is None
        keep = attribute_filter(",".join(f"n{i}" for i in range(60)))
        assert keep("attr__n49") and not keep("attr__n50")

    def test_applied_by_parser(self):
        first = parse_chain(BUY, keep_attribute=attribute_filter("data-attr"))[0]
        assert first["attributes"] == {"attr__data-attr": "buy-button"}
        assert first["text"] == 'Buy \\"now\\"'  # canonical fields are not filtered


class TestSplitPaths:
    def test_fast_path_agrees_with_the_scanner(self):
        import random

        from app.elements_chain import _split_scan

        alphabet = ["a", "b", ";", " ", '"', "=", ":", ".", "\n", 'x="y"', '"q;r"', '"s t"']
        rnd = random.Random(7)
        for _ in range(20_000):
            chain = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
            assert split_chain(chain) == _split_scan(chain), chain

    def test_scanner_quote_rules(self):
        assert split_chain('a:x="\\\\";b') == ['a:x="\\\\"', "b"]  # escaped backslash, then the quote closes
        assert split_chain('a:x="q\\"') == ['a:x="q\\"']  # no closing quote: ends at the last escaped one
        assert split_chain('a:x="open b') == ["a:x=", "open", "b"]  # unterminated: the quote separates

    @pytest.mark.parametrize("hostile", [
        '"' * 16_000, '\\"' * 8_000, ":" * 16_000, '="' * 8_000, "a:" + '="\\' * 5_000,
        ('"' + "\\" * 100) * 150, "a:" + "x" * 16_000, ";" * 16_000,
    ])
    def test_hostile_chains_parse_quickly(self, hostile):
        import time

        started = time.perf_counter()
        parse_chain(hostile)
        assert time.perf_counter() - started < 0.5
