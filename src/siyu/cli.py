"""The ``siyu`` command: serve, worker, migrate, createadmin, demo."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Annotated

import typer

app = typer.Typer(
    help="Siyu (私域): private-domain commerce — mall and SCRM in one. Settings come from SIYU_* environment variables.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings():
    from siyu.config import SettingsError, get_settings

    try:
        s = get_settings()
        s.resolved_secret_key()
        return s
    except SettingsError as exc:
        typer.secho(f"Siyu cannot start: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


async def _migrate(url: str) -> bool:
    from siyu.kit.migrate import is_up_to_date, upgrade

    if await is_up_to_date(url):
        return False
    await upgrade(url)
    return True


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run repeatedly)."""
    s = _settings()
    changed = asyncio.run(_migrate(s.effective_database_url))
    typer.echo("database migrated to the latest schema" if changed else "database schema already up to date")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Web worker processes (use Redis to share limits and jobs)")] = 1,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Do not migrate an embedded database on start")] = False,
) -> None:
    """Run the web server (console, storefront, APIs) with background jobs in-process.

    On the embedded SQLite database the schema is migrated on start; on PostgreSQL run
    `siyu migrate` first (start-up refuses an out-of-date schema).
    """
    import uvicorn

    s = _settings()
    from siyu.kit.migrate import is_up_to_date

    if s.is_sqlite and not no_migrate:
        if asyncio.run(_migrate(s.effective_database_url)):
            typer.echo("embedded database migrated")
    elif not asyncio.run(is_up_to_date(s.effective_database_url)):
        typer.secho("The database schema is out of date: run `siyu migrate` first.", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if workers > 1 and not s.redis_url:
        typer.secho(
            "note: without SIYU_REDIS_URL each worker keeps its own rate-limit counters; set Redis for shared limits.",
            fg=typer.colors.YELLOW, err=True,
        )
    typer.echo(f"Siyu console:    http://{host}:{port}/admin")
    typer.echo(f"Siyu storefront: http://{host}:{port}/m")
    typer.echo(f"API docs:        http://{host}:{port}/docs")
    uvicorn.run("siyu.app:create_app", factory=True, host=host, port=port, workers=workers, log_config=None,
                access_log=False, proxy_headers=True)


@app.command()
def worker() -> None:
    """Run background work: outbox dispatch, periodic sweepers and, with Redis, queued jobs."""
    s = _settings()
    asyncio.run(_worker(s))


async def _worker(s) -> None:
    from taskiq.receiver import Receiver

    from siyu.kit import jobs
    from siyu.kit.logs import configure_logging
    from siyu.kit.runtime import build_runtime, set_runtime

    configure_logging(s.log_level, s.log_json)
    from siyu.app import load_modules

    load_modules()

    rt = build_runtime(s)
    set_runtime(rt)
    broker_is_redis = s.effective_broker == "redis"
    jobs.broker.is_worker_process = True
    await jobs.broker.startup()
    loops = jobs.BackgroundLoops(rt, kick_to_broker=broker_is_redis)
    loops.start()
    stop = asyncio.Event()
    typer.echo(f"siyu worker {os.getpid()} started (broker: {s.effective_broker})")
    try:
        if broker_is_redis:
            receiver = Receiver(jobs.broker, run_startup=False, max_async_tasks=20)
            # A dropped or timed-out Redis connection must not end the worker: the queue is
            # only a wake-up signal (the outbox and sweepers are the truth), so log, back off
            # and listen again.
            delay = 1.0
            while not stop.is_set():
                try:
                    await receiver.listen(stop)
                    delay = 1.0
                except Exception as exc:
                    logging.getLogger("siyu.jobs").warning("job queue listener failed; retrying in %.0f s: %s", delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        else:
            await stop.wait()
    finally:
        await loops.stop()
        await jobs.broker.shutdown()
        await rt.close()


@app.command()
def createadmin(
    username: Annotated[str, typer.Option(prompt=True, help="Platform operator username")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters")],
    name: Annotated[str, typer.Option(help="Display name")] = "平台管理员",
) -> None:
    """Create a platform operator account (商家管理: onboards and suspends tenants)."""
    if len(password) < 8:
        typer.secho("password must be at least 8 characters", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    s = _settings()

    async def run() -> None:
        from siyu.kit.runtime import build_runtime
        from siyu.tenants import service

        await _migrate(s.effective_database_url) if s.is_sqlite else None
        rt = build_runtime(s)
        try:
            async with rt.db.uow() as session:
                await service.create_platform_user(session, username, password, name)
        finally:
            await rt.close()

    from siyu.kit.errors import DomainError

    try:
        asyncio.run(run())
    except DomainError as exc:
        typer.secho(exc.message("en"), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"platform operator {username} created; sign in at /platform")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=0, max=100_000, help="How many demo customers")] = 200,
    orders: Annotated[int, typer.Option(min=0, max=20_000, help="How many demo orders (last 180 days, every state)")] = 1000,
) -> None:
    """Create the demo tenant 青山茶社 (idempotent) and print the sign-in details."""
    s = _settings()
    from rich.progress import Progress

    async def run(bar: Progress) -> dict[str, str]:
        from siyu.demo import seed
        from siyu.kit.runtime import build_runtime, set_runtime

        if s.is_sqlite:
            await _migrate(s.effective_database_url)
        rt = build_runtime(s)
        set_runtime(rt)
        task = bar.add_task("demo shop", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, description="demo orders", completed=done, total=total)

        try:
            return await seed(rt, customers=customers, orders=orders, progress=progress)
        finally:
            await rt.close()
            set_runtime(None)

    with Progress(transient=True, disable=not sys.stdout.isatty()) as bar:
        info = asyncio.run(run(bar))
    for k, v in info.items():
        typer.echo(f"{k}: {v}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
