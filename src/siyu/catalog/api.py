"""JSON endpoints of this module."""

from __future__ import annotations

from fastapi import APIRouter

#: Every router of this module; app.py includes them all.
routers: list[APIRouter] = []
