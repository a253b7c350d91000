"""Console and storefront pages of this module."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
