"""Render the report template as a stream of text chunks (never the whole report at once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined

from core.schemas.pets import PET_NAME_MAX, PetPublic, PetType
from report_worker.columns import cell, thousands, utc
from report_worker.query import PetCounts

NAME_WIDTH = 32
TYPE_WIDTH = max(len(kind.value) for kind in PetType)
assert NAME_WIDTH < PET_NAME_MAX  # long names are cut, not allowed to push the columns

_env = Environment(
    loader=PackageLoader("report_worker", "templates"),
    autoescape=False,  # plain text for a terminal, not HTML  # noqa: S701
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    enable_async=True,  # the template iterates the pages as they are read from the database
)


def pet_rows(pets: list[PetPublic], name_width: int, type_width: int) -> str:
    """A page of pets, one line each, without the last line's newline.

    A filter over a whole page: per-row template expressions would each cost a trip through
    the async template machinery, a million times per report.
    """
    types = {kind: cell(kind.value, type_width) for kind in PetType}
    return "\n".join(
        f"{cell(pet.name, name_width)}  {types[pet.pet_type]}  {utc(pet.created_at)}"
        for pet in pets
    )


_env.filters.update(cell=cell, utc=utc, thousands=thousands, pet_rows=pet_rows)
_template = _env.get_template("report.txt.j2")


def render_report(
    *, generated_at: datetime, counts: PetCounts, pages: AsyncIterator[list[PetPublic]]
) -> AsyncIterator[str]:
    """Chunks of the report text, produced while `pages` of pets are consumed."""
    return _template.generate_async(
        generated_at=generated_at,
        counts=counts,
        pages=pages,
        name_width=NAME_WIDTH,
        type_width=TYPE_WIDTH,
        count_width=len(thousands(counts.total)),
    )
