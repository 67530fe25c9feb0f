"""Initial registry schema: models, components (classifiers + candidates, FLIPAD detectors, Kim key sets + keys,
Yu 2022 decoders, indexes + codes, log origins) and API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

Frozen: a migration states the schema as it was at this revision, so nothing here is imported from
``genattr.registry.schema`` (which may change in later revisions).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MODEL_KINDS = "kind IN ('zoo', 'keyed-user', 'fingerprint-instance', 'external')"
COMPONENT_KINDS = ("kind IN ('classifier', 'flipad-detector', 'kim-keys', 'yu2022-decoder', 'yu2022-index', "
                   "'log-origin')")


def _created() -> sa.Column:
    return sa.Column("created", sa.DateTime(timezone=True), nullable=False)


def _component_id(table: str) -> list:
    return [sa.Column("id", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(["id"], ["components.id"], name=f"fk_{table}_id_components", ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}")]


def _model_ref(table: str, nullable: bool) -> list:
    return [sa.Column("model_id", sa.String(64), nullable=nullable),
            sa.ForeignKeyConstraint(["model_id"], ["models.id"], name=f"fk_{table}_model_id_models",
                                    ondelete="RESTRICT")]


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("architecture", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(256), nullable=True),
        _created(),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.CheckConstraint(MODEL_KINDS, name="ck_models_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("name", name="uq_models_name"),
    )
    op.create_table(
        "components",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        _created(),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.CheckConstraint(COMPONENT_KINDS, name="ck_components_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_components"),
        sa.UniqueConstraint("name", name="uq_components_name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        _created(),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("label", name="uq_api_tokens_label"),
        sa.UniqueConstraint("token_sha256", name="uq_api_tokens_token_sha256"),
    )

    op.create_table("classifiers", *_component_id("classifiers"),
                    sa.Column("attributor", sa.String(64), nullable=True))
    op.create_table(
        "classifier_candidates",
        sa.Column("classifier_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        *_model_ref("classifier_candidates", nullable=True),
        sa.CheckConstraint("model_id IS NOT NULL OR label = 'real'", name="ck_classifier_candidates_real_or_model"),
        sa.ForeignKeyConstraint(["classifier_id"], ["classifiers.id"],
                                name="fk_classifier_candidates_classifier_id_classifiers", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("classifier_id", "position", name="pk_classifier_candidates"),
        sa.UniqueConstraint("classifier_id", "label", name="uq_classifier_candidates_classifier_id_label"),
    )

    op.create_table("flipad_detectors", *_component_id("flipad_detectors"),
                    *_model_ref("flipad_detectors", nullable=False))

    op.create_table("kim_keysets", *_component_id("kim_keysets"), sa.Column("angle_deg", sa.Float(), nullable=True))
    op.create_table(
        "kim_keys",
        sa.Column("keyset_id", sa.Integer(), nullable=False),
        sa.Column("key_index", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        *_model_ref("kim_keys", nullable=True),
        sa.ForeignKeyConstraint(["keyset_id"], ["kim_keysets.id"], name="fk_kim_keys_keyset_id_kim_keysets",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("keyset_id", "key_index", name="pk_kim_keys"),
        sa.UniqueConstraint("keyset_id", "user_name", name="uq_kim_keys_keyset_id_user_name"),
    )

    op.create_table("yu2022_decoders", *_component_id("yu2022_decoders"),
                    sa.Column("code_bits", sa.Integer(), nullable=True))
    op.create_table("yu2022_indexes", *_component_id("yu2022_indexes"),
                    sa.Column("code_bits", sa.Integer(), nullable=True))
    op.create_table(
        "yu2022_codes",
        sa.Column("index_id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("code", sa.LargeBinary(), nullable=False),
        *_model_ref("yu2022_codes", nullable=True),
        sa.ForeignKeyConstraint(["index_id"], ["yu2022_indexes.id"], name="fk_yu2022_codes_index_id_yu2022_indexes",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("index_id", "user_name", name="pk_yu2022_codes"),
        sa.UniqueConstraint("index_id", "code", name="uq_yu2022_codes_index_id_code"),
    )

    op.create_table(
        "log_origins", *_component_id("log_origins"),
        sa.Column("origin", sa.String(256), nullable=False),
        sa.Column("verifier_key", sa.Text(), nullable=False),
        sa.UniqueConstraint("origin", name="uq_log_origins_origin"),
    )

    for table in ("classifier_candidates", "flipad_detectors", "kim_keys", "yu2022_codes"):
        op.create_index(f"ix_{table}_model_id", table, ["model_id"], unique=False)


def downgrade() -> None:
    for table in ("classifier_candidates", "flipad_detectors", "kim_keys", "yu2022_codes"):
        op.drop_index(f"ix_{table}_model_id", table_name=table)
    for table in ("log_origins", "yu2022_codes", "yu2022_indexes", "yu2022_decoders", "kim_keys", "kim_keysets",
                  "flipad_detectors", "classifier_candidates", "classifiers", "api_tokens", "components", "models"):
        op.drop_table(table)
