"""Pages shared by every area: language switch and the "coming" page of unbuilt modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from siyu.kit.context import current_language
from siyu.kit.errors import NotFound
from siyu.kit.i18n import LANGUAGES
from siyu.staff.access import CurrentStaff
from siyu.web.forms import safe_next
from siyu.web.nav import COMING
from siyu.web.page import console_page

router = APIRouter(include_in_schema=False)


@router.post("/lang")
async def switch_language(lang: Annotated[str, Form(max_length=10)], next: Annotated[str, Form(max_length=500)] = "/admin") -> Response:
    resp = RedirectResponse(safe_next(next), status_code=303)
    if lang in LANGUAGES:
        resp.set_cookie("siyu_lang", lang, max_age=365 * 86400, samesite="lax", path="/")
    return resp


@router.get("/admin/coming/{module}")
async def coming(module: str, request: Request, me: CurrentStaff) -> Response:
    if module not in COMING:
        raise NotFound("page_not_found", "页面不存在", "No such page")
    zh, en, desc = COMING[module]
    title = en if current_language().startswith("en") else zh
    return console_page(request, me, "console/coming.html", {"title": title, "description": desc, "module": module})
