"""The model registry database: which generators exist (id = sha256 of their weights) and which attribution
components cover them — closed-set classifiers and their candidates, FLIPAD detectors, Kim key sets, Yu 2022
decoders and code indexes, trusted generation-log origins — plus the API tokens of the HTTP service.

SQLAlchemy 2 + Alembic; SQLite by default (``$GENATTR_HOME/registry.db``), PostgreSQL by URL
(``GENATTR_DATABASE_URL=postgresql+psycopg://…``). No torch here (an import-linter contract keeps it so).
See docs/registry.md.
"""

from genattr.registry.core import TOKEN_PREFIX, Registry
from genattr.registry.db import ENV_URL, default_url
from genattr.registry.records import (
    COMPONENT_KINDS,
    MODEL_KINDS,
    REAL,
    CodeRecord,
    ComponentRecord,
    ModelRecord,
    TokenRecord,
)

__all__ = ["COMPONENT_KINDS", "ENV_URL", "MODEL_KINDS", "REAL", "TOKEN_PREFIX", "CodeRecord", "ComponentRecord",
           "ModelRecord", "Registry", "TokenRecord", "default_url"]
