"""Alembic environment of the registry. ``Registry.open`` passes its open connection (one transaction, inside
the caller's); for writing a new revision by hand, set ``sqlalchemy.url`` (or GENATTR_DATABASE_URL) instead:

    python -c "from alembic import command; from genattr.registry.db import alembic_config as c; \\
               cfg = c(); cfg.set_main_option('sqlalchemy.url', 'sqlite:///dev.db'); \\
               command.revision(cfg, 'what changed', autogenerate=True)"
"""

from __future__ import annotations

from alembic import context

from genattr.registry.schema import VERSION_TABLE, Base


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from genattr.registry.db import Database, default_url

    db = Database(context.config.get_main_option("sqlalchemy.url") or default_url())
    try:
        with db.connection() as conn:
            _run(conn)
    finally:
        db.dispose()
