"""Property tests for the request validators: whatever a client sends, each validator either
accepts a value that is safe to store, or refuses it with a ValidationError; never anything
else. And each rule the OpenAPI document states (a pattern) is exactly the rule enforced."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from core.pagination import InvalidCursor, decode_cursor, encode_cursor
from core.schemas.generation import (
    IDEMPOTENCY_KEY_MAX,
    PROMPT_MAX,
    FluxSchnellParams,
    GenerateRequest,
    IdempotencyKey,
)
from core.schemas.pets import PET_NAME_MAX, PetCreate, PetUpdate
from core.schemas.text import MULTI_LINE, SEARCH_TERM, SINGLE_LINE, TextRule

# Any text, surrogates aside (json.loads can make them; Pydantic refuses them, tested in the
# APIs), with the characters that matter here made likely.
tricky = st.sampled_from(list("\x00\t\n\r\x0b\x0c\x1f\x7f\x85\x9f\xa0\u2028\u3000 aZ\u00e9\u4e2d"))
texts = st.lists(st.one_of(st.characters(exclude_categories=["Cs"]), tricky), max_size=40).map(
    "".join
)
PROPERTIES = settings(max_examples=300, deadline=None)


def has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


@pytest.mark.parametrize("rule", [SINGLE_LINE, MULTI_LINE, SEARCH_TERM])
@PROPERTIES
@given(text=texts)
@example(text="")
@example(text=" \t\n ")
@example(text="a\u0085b")
def test_the_documented_pattern_is_the_enforced_rule(rule: TextRule, text: str) -> None:
    try:
        rule.check(text)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == (re.fullmatch(rule.pattern, text) is not None)


@PROPERTIES
@given(text=texts)
def test_an_accepted_name_is_trimmed_printable_and_fits(text: str) -> None:
    try:
        pet = PetCreate.model_validate({"name": text, "pet_type": "cat"})
    except ValidationError:
        return
    assert pet.name == pet.name.strip()
    assert 1 <= len(pet.name) <= PET_NAME_MAX
    assert not has_control(pet.name)
    pet.name.encode("utf-8")  # storable


@PROPERTIES
@given(text=st.text(max_size=2100) | texts)
def test_an_accepted_prompt_is_storable_and_bounded(text: str) -> None:
    try:
        request = GenerateRequest.model_validate({"prompt": text})
    except ValidationError:
        return
    prompt = request.prompt
    assert prompt.strip() == prompt != ""
    assert len(prompt) <= PROMPT_MAX
    assert "\x00" not in prompt
    assert all(c in "\t\n\r" or unicodedata.category(c) != "Cc" for c in prompt)
    prompt.encode("utf-8")


@PROPERTIES
@given(value=st.one_of(st.none(), texts))
def test_patch_fields_may_be_omitted_but_never_null(value: str | None) -> None:
    valid = (
        value is not None
        and len(value) <= PET_NAME_MAX
        and re.fullmatch(SINGLE_LINE.pattern, value) is not None
    )
    try:
        update = PetUpdate.model_validate({"name": value})
    except ValidationError:
        assert not valid
        return
    assert valid
    assert value is not None
    assert update.name == value.strip()
    assert PetUpdate.model_validate({}).model_fields_set == set()


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
)
param_names = st.sampled_from([*list(FluxSchnellParams.model_fields), "unknown", ""])


@PROPERTIES
@given(params=st.dictionaries(param_names, json_values, max_size=5))
def test_params_are_either_the_promised_types_or_refused(params: dict[str, Any]) -> None:
    try:
        valid = FluxSchnellParams.model_validate(params)
    except ValidationError:
        return
    for name in ("num_outputs", "num_inference_steps", "output_quality"):
        assert type(getattr(valid, name)) is int  # never a bool, a float or a string
    assert valid.seed is None or type(valid.seed) is int
    assert type(valid.go_fast) is bool
    assert type(valid.disable_safety_checker) is bool
    for name, sent in params.items():
        if isinstance(sent, bool) and name in ("num_outputs", "seed", "output_quality"):
            pytest.fail(f"{name}={sent!r} was accepted as a number")


@PROPERTIES
@given(n=st.integers(min_value=1, max_value=4))
def test_whole_floats_are_integers_and_fractions_are_not(n: int) -> None:
    assert FluxSchnellParams.model_validate({"num_outputs": float(n)}).num_outputs == n
    with pytest.raises(ValidationError):
        FluxSchnellParams.model_validate({"num_outputs": n - 0.5})
    with pytest.raises(ValidationError):
        FluxSchnellParams.model_validate({"num_outputs": str(n)})


moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@PROPERTIES
@given(moment=moments, row_id=st.uuids())
def test_a_cursor_decodes_to_what_was_encoded(moment: datetime, row_id: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(moment, row_id)) == (moment, row_id)


@PROPERTIES
@given(cursor=st.text(max_size=200) | st.binary(max_size=150).map(lambda b: b.hex()))
def test_any_other_cursor_is_refused_cleanly_or_is_a_real_position(cursor: str) -> None:
    try:
        moment, row_id = decode_cursor(cursor)
    except InvalidCursor:
        return
    assert moment.tzinfo is not None
    assert moment.utcoffset() is not None
    assert decode_cursor(encode_cursor(moment, row_id)) == (moment, row_id)


keys = TypeAdapter(IdempotencyKey)


@PROPERTIES
@given(key=st.text(max_size=300) | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
def test_an_idempotency_key_is_1_to_255_printable_ascii(key: str) -> None:
    expected = 1 <= len(key) <= IDEMPOTENCY_KEY_MAX and all(" " <= c <= "~" for c in key)
    try:
        keys.validate_python(key)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == expected
