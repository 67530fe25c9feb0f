"""The registry's tables (SQLAlchemy 2 ORM). The Alembic migrations in ``migrations/versions`` must build
exactly this schema: ``tests/registry/test_registry_migrations.py`` compares them on SQLite and PostgreSQL.

Components use joined-table inheritance: ``components`` holds what every kind has (a unique name, the
on-disk path, its sha256, JSON meta) and gives all kinds one id space; each kind has its own table for what
only it has (a classifier's ordered candidates, a detector's model, a key set's keys, an index's codes, a log
origin's verifier key). Rows that point at a model use ``ON DELETE RESTRICT``: a model some component still
covers cannot be removed; removing a component removes its own rows (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from genattr.registry.records import COMPONENT_KINDS, MODEL_KINDS, REAL

# Alembic's bookkeeping table, named for the registry so it can share a database with other applications.
VERSION_TABLE = "genattr_registry_version"

# Deterministic constraint names: migrations and the ORM name them identically on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Model(Base):
    __tablename__ = "models"
    __table_args__ = (CheckConstraint(_in("kind", MODEL_KINDS), name="kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the weights file
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    architecture: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(256))
    created: Mapped[datetime]
    path: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]]


class Component(Base):
    __tablename__ = "components"
    __table_args__ = (CheckConstraint(_in("kind", COMPONENT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime]
    meta: Mapped[dict[str, Any]]

    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_on": "kind"}


def _component_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("components.id", ondelete="CASCADE"), primary_key=True)


def _model_fk(nullable: bool) -> Mapped[Any]:
    return mapped_column(String(64), ForeignKey("models.id", ondelete="RESTRICT"), nullable=nullable, index=True)


class Classifier(Component):
    __tablename__ = "classifiers"
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "classifier"}

    id: Mapped[int] = _component_fk()
    attributor: Mapped[str | None] = mapped_column(String(64))  # the attribution registry name it loads as
    candidates: Mapped[list[ClassifierCandidate]] = relationship(
        order_by="ClassifierCandidate.position", cascade="all, delete-orphan", passive_deletes=True)


class ClassifierCandidate(Base):
    """One output class of a closed-set classifier, in the classifier's own order. ``label`` is the name the
    classifier answers with; ``model_id`` the registered model behind it — NULL only for the real-data class."""

    __tablename__ = "classifier_candidates"
    __table_args__ = (UniqueConstraint("classifier_id", "label"),
                      CheckConstraint(f"model_id IS NOT NULL OR label = '{REAL}'", name="real_or_model"))

    classifier_id: Mapped[int] = mapped_column(ForeignKey("classifiers.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[str | None] = _model_fk(nullable=True)
    model: Mapped[Model | None] = relationship()


class FlipadDetector(Component):
    __tablename__ = "flipad_detectors"
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "flipad-detector"}

    id: Mapped[int] = _component_fk()
    model_id: Mapped[str] = _model_fk(nullable=False)
    model: Mapped[Model] = relationship()


class KimKeyset(Component):
    __tablename__ = "kim_keysets"
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "kim-keys"}

    id: Mapped[int] = _component_fk()
    angle_deg: Mapped[float | None] = mapped_column(Float)
    keys: Mapped[list[KimKey]] = relationship(order_by="KimKey.key_index", cascade="all, delete-orphan",
                                              passive_deletes=True)


class KimKey(Base):
    """Key ``key_index`` of a key set belongs to ``user_name``; ``model_id`` is that user's keyed model once
    registered (a key can be issued before its user fine-tunes a model)."""

    __tablename__ = "kim_keys"
    __table_args__ = (UniqueConstraint("keyset_id", "user_name"),)

    keyset_id: Mapped[int] = mapped_column(ForeignKey("kim_keysets.id", ondelete="CASCADE"), primary_key=True)
    key_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[str | None] = _model_fk(nullable=True)
    model: Mapped[Model | None] = relationship()


class Yu2022Decoder(Component):
    __tablename__ = "yu2022_decoders"
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "yu2022-decoder"}

    id: Mapped[int] = _component_fk()
    code_bits: Mapped[int | None] = mapped_column(Integer)


class Yu2022Index(Component):
    __tablename__ = "yu2022_indexes"
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "yu2022-index"}

    id: Mapped[int] = _component_fk()
    code_bits: Mapped[int | None] = mapped_column(Integer)
    codes: Mapped[list[Yu2022Code]] = relationship(order_by="Yu2022Code.user_name", cascade="all, delete-orphan",
                                                   passive_deletes=True)


class Yu2022Code(Base):
    """A code registered in an index (packed bits, d_c/8 bytes): the record; the faiss index on disk stays the
    lookup structure. ``model_id``: the fingerprinted instance, when it is registered as a model."""

    __tablename__ = "yu2022_codes"
    __table_args__ = (UniqueConstraint("index_id", "code"),)

    index_id: Mapped[int] = mapped_column(ForeignKey("yu2022_indexes.id", ondelete="CASCADE"), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    code: Mapped[bytes] = mapped_column(LargeBinary)
    model_id: Mapped[str | None] = _model_fk(nullable=True)
    model: Mapped[Model | None] = relationship()


class LogOrigin(Component):
    """A trusted generation log: its checkpoint origin line and the note verifier key (``name+id+key``) its
    checkpoints must be signed with. The log's database path or URL is the component's ``path``."""

    __tablename__ = "log_origins"
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "log-origin"}

    id: Mapped[int] = _component_fk()
    origin: Mapped[str] = mapped_column(String(256), unique=True)
    verifier_key: Mapped[str] = mapped_column(Text)


class ApiToken(Base):
    """A bearer token for registry writes over HTTP, stored as its sha256 only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(128), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime]
    revoked: Mapped[datetime | None]  # NULL while the token is valid


COMPONENT_CLASSES: dict[str, type[Component]] = {
    "classifier": Classifier, "flipad-detector": FlipadDetector, "kim-keys": KimKeyset,
    "yu2022-decoder": Yu2022Decoder, "yu2022-index": Yu2022Index, "log-origin": LogOrigin,
}

__all__ = ["COMPONENT_CLASSES", "NAMING", "VERSION_TABLE", "ApiToken", "Base", "Classifier", "ClassifierCandidate",
           "Component", "FlipadDetector", "KimKey", "KimKeyset", "LogOrigin", "Model", "Yu2022Code", "Yu2022Decoder",
           "Yu2022Index"]
