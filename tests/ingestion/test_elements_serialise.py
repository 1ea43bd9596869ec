"""`$elements` → `elements_chain` (INGESTION.md §11.2, examples of §11.4)."""

from __future__ import annotations

from app.elements_chain import chain_from_elements, element_from_sdk


def test_anchor_in_div_example():
    elements = [
        {"tag_name": "a", "attr__class": "btn primary", "attr__id": "cta", "attr__href": "/signup",
         "$el_text": "Sign up", "nth_child": 1, "nth_of_type": 1},
        {"tag_name": "div", "attr__class": "hero", "nth_child": 2, "nth_of_type": 1},
        {"tag_name": "body", "nth_child": 2, "nth_of_type": 1},
    ]
    assert chain_from_elements(elements) == (
        'a.btn.primary:attr__class="btn primary"attr__href="/signup"attr__id="cta"attr_id="cta"href="/signup"'
        'nth-child="1"nth-of-type="1"text="Sign up";div.hero:attr__class="hero"nth-child="2"nth-of-type="1";'
        'body:nth-child="2"nth-of-type="1"'
    )


def test_quotes_and_semicolons_escaped():
    elements = [{"tag_name": "button", "attr__type": "submit", "$el_text": 'Say "hi"; ok', "nth_child": 3,
                 "nth_of_type": 2}]
    assert chain_from_elements(elements) == 'button:attr__type="submit"nth-child="3"nth-of-type="2"text="Say \\"hi\\"; ok"'


def test_no_position_info_and_class_list():
    assert chain_from_elements([{"tag_name": "img"}]) == 'img:nth-child="0"nth-of-type="0"'
    chain = chain_from_elements([{"tag_name": "p", "attr__class": ["z", 'a"b']}])
    assert chain.startswith("p.ab.z:")


def test_text_and_href_truncated():
    element = element_from_sdk({"tag_name": "a", "$el_text": "x" * 500, "attr__href": "h" * 3000})
    assert len(element["text"]) == 400 and len(element["href"]) == 2048
