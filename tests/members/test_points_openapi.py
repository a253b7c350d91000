"""The OpenAPI fuzz of ``tests/test_openapi.py`` over the points operations only (a quick run
while working on this part; the full fuzz covers them too): never a 5xx, every 4xx is
problem+json with a code, and every request body has an example."""

from __future__ import annotations

from typing import Any

from tests.test_openapi import World, _cases, _run, operations, world  # noqa: F401  (world is a fixture)


def _mine(path: str) -> bool:
    return "/member/points" in path or "/members/points" in path or path.endswith("/points/adjust") or (
        path.startswith("/api/admin/v1/members/{") and path.endswith("/points"))


async def test_fuzz_the_points_operations(app: Any, world: World) -> None:  # noqa: F811
    spec = app.openapi()
    ops = [op for op in operations(spec) if _mine(op.path)]
    assert len(ops) == 8, [op.path for op in ops]
    failures: list[str] = []
    sent = 0
    for op in ops:
        sent += await _run(world, op, _cases(spec, op, world.ids), failures)
        body = op.spec.get("requestBody")
        if body:
            schema = body["content"]["application/json"]["schema"]
            ref = schema.get("$ref", "").rsplit("/", 1)[-1]
            assert spec["components"]["schemas"][ref].get("examples"), op.path
    assert sent > 100
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:60])
