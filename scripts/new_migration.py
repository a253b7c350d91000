"""Autogenerate a migration from the models: ``python scripts/new_migration.py "message" 0002``.

It diffs against a scratch SQLite database upgraded to head, then fixes the one thing
Alembic renders unqualified (``Text()`` inside JSONB), so the file runs on both databases.
Review the result, and run the suite on PostgreSQL before committing it.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import tempfile

from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from siyu.kit.migrate import MIGRATIONS, alembic_config, upgrade


async def main(message: str, rev_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/scratch.db"
        await upgrade(url)
        cfg = alembic_config(url)
        engine = create_async_engine(url)
        async with engine.begin() as conn:

            def run(c):  # type: ignore[no-untyped-def]
                cfg.attributes["connection"] = c
                command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)

            await conn.run_sync(run)
        await engine.dispose()
    for path in (MIGRATIONS / "versions").glob(f"{rev_id}_*.py"):
        text = path.read_text().replace("astext_type=Text()", "astext_type=sa.Text()")
        path.write_text(text)
        print(f"wrote {path.relative_to(pathlib.Path.cwd()) if path.is_relative_to(pathlib.Path.cwd()) else path}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
