"""Annotated input types shared by every schema.

They reject what databases choke on (NUL bytes, ids beyond BIGINT) at the edge, so bad
input is a 422 with a field name instead of a driver error.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field, StringConstraints

MAX_ID = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PHONE = re.compile(r"^1[3-9]\d{9}$")


_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def no_control(v: str) -> str:
    if _CONTROL.search(v):
        raise ValueError("must not contain control characters")
    if _BIDI.search(v):
        raise ValueError("must not contain text-direction override characters")
    return v


def _visible(v: str) -> str:
    """A name must show something: not only spaces and invisible format characters."""
    if not any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in v):
        raise ValueError("must contain visible characters")
    return v


def _phone(v: str) -> str:
    v = v.strip().removeprefix("+86").strip()
    if not _PHONE.match(v):
        raise ValueError("must be an 11-digit mainland China mobile number")
    return v


Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(no_control)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(no_control), AfterValidator(_visible)
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(no_control)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), AfterValidator(no_control)]
Phone = Annotated[str, StringConstraints(max_length=20), AfterValidator(_phone)]
ObjectId = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="Object id")]


def _no_control_opt(v: str | None) -> str | None:
    return None if v is None else no_control(v)


#: ``?q=`` free-text search: trimmed, at most 100 characters, no control characters.
SearchText = Annotated[
    str | None,
    Query(max_length=100, description="Free-text search"),
    AfterValidator(_no_control_opt),
]
#: Any other free-text filter in a query string.
FilterText = Annotated[str | None, Query(max_length=100), AfterValidator(_no_control_opt)]
