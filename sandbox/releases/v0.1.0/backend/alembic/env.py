"""Alembic environment: online migrations only, the whole run in one transaction
(PostgreSQL has transactional DDL, so a failing revision rolls back every revision of the run)."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from app.config import database_url

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name)

engine = create_engine(database_url(), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
