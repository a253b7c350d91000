"""Pages of the orders module: ``views_console`` (the console's order list, detail, shipping,
after-sales queue and settings under ``/admin/orders``) and ``views_store`` (the storefront's
cart, checkout, payment result, my orders, order detail and after-sales pages under
``/m/{shop}``)."""

from __future__ import annotations

from fastapi import APIRouter

from siyu.orders import views_console, views_store

router = APIRouter()
router.include_router(views_console.router)
router.include_router(views_store.router)
