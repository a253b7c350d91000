"""The migration chain produces exactly the schema the models declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from siyu.kit.migrate import head_revision
from siyu.kit.models import metadata


async def test_migrated_schema_matches_models(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn):  # type: ignore[no-untyped-def]
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return ctx.get_current_revision(), compare_metadata(ctx, metadata)

            revision, changes = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert revision == head_revision(database_url)
    assert changes == [], f"models and migrations differ; generate a migration: {changes}"
