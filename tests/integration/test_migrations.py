"""Migrations: every revision upgrades, downgrades and upgrades again, and PostgreSQL migrations are transactional."""

from __future__ import annotations

import ast
import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.base import metadata_registry
from advanced_alchemy.extensions.litestar import AlembicAsyncConfig, SQLAlchemyAsyncConfig
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

import app.infra.db.tables  # noqa: F401 - registers the tables in the metadata
from app.infra.db.config import MIGRATIONS_DIR, database_config
from tests.support import create_postgres_database, drop_postgres_database, litestar_cli, make_settings, migrate

EXPECTED_TABLES = {"users", "refresh_tokens"}

Schema = dict[str, Any]


def _revisions() -> list[Script]:
    """Every revision, base first, read from the same script directory the CLI uses."""
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    assert len(scripts.get_heads()) == 1, f"migrations have several heads: {scripts.get_heads()}"
    return list(reversed(list(scripts.walk_revisions("base", "heads"))))


def _inspect_schema(connection: Connection) -> Schema:
    inspector = inspect(connection)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        tables[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in inspector.get_columns(table)
            ),
            "indexes": sorted((i["name"] or "", tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            "unique": sorted(u["name"] or "" for u in inspector.get_unique_constraints(table)),
            "foreign_keys": sorted(f["name"] or "" for f in inspector.get_foreign_keys(table)),
        }
    schema: Schema = {"tables": tables}
    if connection.dialect.name == "postgresql":
        # a downgrade that forgets DROP TYPE leaves the enum behind and breaks the next upgrade
        schema["enums"] = sorted(e["name"] for e in inspector.get_enums(schema="*"))  # type: ignore[attr-defined]
        schema["sequences"] = sorted(inspector.get_sequence_names())
    versions: set[str] = set()
    if inspector.has_table("alembic_version"):
        versions = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
    schema["versions"] = versions
    return schema


async def _schema_async(url: str) -> Schema:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_inspect_schema)
    finally:
        await engine.dispose()


def _schema(url: str) -> Schema:
    return asyncio.run(_schema_async(url))


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (not the shared, already migrated one)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'stairway.sqlite3'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def _alembic(url: str) -> AlembicCommands:
    """The commands behind ``litestar database ...``, in this process: the stairway runs dozens of them, and a
    CLI process per step (importing the whole application each time) made the test take minutes. The CLI path
    itself is what every other database test's set-up and this test's final downgrade go through."""
    return AlembicCommands(sqlalchemy_config=database_config(make_settings(url)))


def test_stairway_every_revision_upgrades_downgrades_and_upgrades_again(fresh_database_url: str) -> None:
    url = fresh_database_url
    alembic = _alembic(url)
    revisions = _revisions()
    assert revisions, "no migration found"
    schema_before = _schema(url)
    assert schema_before["tables"] == {}

    for revision in revisions:
        down = revision.down_revision
        assert down is None or isinstance(down, str), f"{revision.revision}: merge revisions are not expected"

        alembic.upgrade(revision.revision)
        upgraded = _schema(url)
        assert upgraded["versions"] == {revision.revision}

        alembic.downgrade(down or "base")
        downgraded = _schema(url)
        assert downgraded["versions"] == ({down} if down else set())
        assert downgraded == schema_before, f"downgrade of {revision.revision} does not restore the previous schema"

        alembic.upgrade(revision.revision)
        assert _schema(url) == upgraded, f"upgrade of {revision.revision} is not repeatable after its downgrade"
        schema_before = upgraded

    head = _schema(url)
    assert head["versions"] == {revisions[-1].revision}
    assert set(head["tables"]) >= EXPECTED_TABLES
    # every ORM table has a migration (the schema is created only by migrations)
    orm_tables = {table.name for table in metadata_registry.get(None).sorted_tables}
    assert orm_tables <= set(head["tables"]), f"tables without a migration: {orm_tables - set(head['tables'])}"

    # and back down to nothing in one go
    litestar_cli("database", "downgrade", "base", "--no-prompt", database_url=url)
    base = _schema(url)
    assert base["tables"] == {}
    assert base["versions"] == set()


def _autocommit_calls(source: str) -> list[str]:
    """Each ``autocommit_block()`` call, with what it wraps (comments do not count)."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "autocommit_block":
                    calls.append(ast.unparse(node))
    return calls


def test_migration_sources_do_not_use_autocommit_blocks() -> None:
    """``autocommit_block`` commits mid-migration; only ``CREATE INDEX CONCURRENTLY`` may use it."""
    template = (MIGRATIONS_DIR / "script.py.mako").read_text()
    assert re.search(r"autocommit_block\s*\(", template) is None, "the template wraps new migrations in autocommit"
    offenders = [
        f"{path.name}: {block}"
        for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py"))
        for block in _autocommit_calls(path.read_text())
        if "concurrently" not in block.lower()
    ]
    assert offenders == []


def test_offline_postgres_upgrade_runs_all_ddl_in_one_transaction() -> None:
    # offline mode renders SQL without connecting: the server behind the URL does not even exist
    result = litestar_cli(
        "database",
        "upgrade",
        "head",
        "--sql",
        "--no-prompt",
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/x",
    )
    statements = re.findall(
        r"^(BEGIN|COMMIT|ROLLBACK|CREATE TABLE|CREATE INDEX|ALTER TABLE|DROP \w+|INSERT INTO|UPDATE)\b",
        result.stdout,
        flags=re.MULTILINE,
    )
    assert statements[0] == "BEGIN", result.stdout
    assert statements[-1] == "COMMIT", result.stdout
    assert statements.count("BEGIN") == 1, "a migration commits half-way (autocommit_block?)"
    assert statements.count("COMMIT") == 1, "a migration commits half-way (autocommit_block?)"
    assert statements.count("CREATE TABLE") >= len(EXPECTED_TABLES) + 1  # and alembic_version
    assert len(re.findall(r"^-- Running upgrade", result.stdout, flags=re.MULTILINE)) == len(_revisions())


def test_a_failing_postgres_migration_leaves_no_trace(fresh_postgres_url: str, tmp_path: Path) -> None:
    """A migration generated from our template, failing after some DDL, is rolled back as a whole."""
    url = fresh_postgres_url
    migrate(url)
    before = _schema(url)
    head = _revisions()[-1].revision
    assert before["versions"] == {head}

    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    config = SQLAlchemyAsyncConfig(
        connection_string=url,
        alembic_config=AlembicAsyncConfig(script_location=str(scripts), version_table_name="alembic_version"),
        create_all=False,
    )
    generated = AlembicCommands(config).revision(message="fails on purpose", rev_id="ffff_failing")
    assert isinstance(generated, Script)
    path = Path(generated.path)
    source = path.read_text()
    assert _autocommit_calls(source) == []
    empty_upgrade = "def upgrade() -> None:\n    pass\n"
    assert empty_upgrade in source
    path.write_text(
        source.replace(
            empty_upgrade,
            "def upgrade() -> None:\n"
            '    op.create_table("transaction_probe", sa.Column("id", sa.Integer(), primary_key=True))\n'
            '    op.add_column("users", sa.Column("transaction_probe", sa.Integer(), nullable=True))\n'
            '    op.execute("INSERT INTO transaction_probe (id) VALUES (1)")\n'
            '    op.execute("SELECT no_such_column FROM transaction_probe")\n',
            1,
        )
    )

    with pytest.raises(DBAPIError, match="no_such_column"):
        AlembicCommands(config).upgrade("head")

    after = _schema(url)
    assert "transaction_probe" not in after["tables"]
    assert after == before  # no probe column on users either, and still at the old head
