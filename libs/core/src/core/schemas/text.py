"""What free text the APIs accept: one rule per kind of text, enforced by Pydantic and stated
in the OpenAPI document as a `pattern`, so the spec and the behaviour agree.

PostgreSQL's text cannot hold NUL (it would reach the database as a 500), and other control
characters only break listings, reports and logs. Lone UTF-16 surrogates (JSON's `\\ud800`)
never get this far: Pydantic refuses them as "not a valid string".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# The C0 and C1 control characters (Unicode category Cc), as regex class ranges.
_CONTROLS = r"\x00-\x1f\x7f-\x9f"
# The same without tab, line feed and carriage return, which a multi-line text may hold.
_LINE_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_LINE_CHARS = frozenset("\t\n\r")


@dataclass(frozen=True, slots=True)
class TextRule:
    """An `Annotated` marker for free text: no control characters (but tabs and line breaks
    when `multi_line`), and when `trim`, surrounding whitespace removed and blank refused.
    Length limits (StringConstraints) apply to the text as sent."""

    multi_line: bool = False
    trim: bool = True

    @property
    def pattern(self) -> str:
        """The rule as an ECMA/Python regex, for the OpenAPI document."""
        allowed = _LINE_CONTROLS if self.multi_line else _CONTROLS
        if not self.trim:
            return rf"^[^{allowed}]*$"
        return rf"^[^{allowed}]*[^\s{_CONTROLS}][^{allowed}]*$"

    def check(self, value: str) -> str:
        if not value.isprintable():  # the common case skips the loop
            allowed = _LINE_CHARS if self.multi_line else frozenset()
            if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
                raise ValueError("must not contain control characters")
        if not self.trim:
            return value
        trimmed = value.strip()
        if not trimmed:
            raise ValueError("must not be blank")
        return trimmed

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


SINGLE_LINE = TextRule()  # names
MULTI_LINE = TextRule(multi_line=True)  # prompts
SEARCH_TERM = TextRule(trim=False)  # a substring to look for: spaces are meaningful


def not_nullable(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of an optional field that may be omitted but not sent as null: the
    OpenAPI document shows the plain type (no `null` alternative, no default)."""
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    schema.pop("default", None)
