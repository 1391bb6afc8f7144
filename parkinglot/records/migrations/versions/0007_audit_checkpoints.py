"""audit checkpoints; the trail's guards cover its head and TRUNCATE

- ``audit_checkpoint``: signed checkpoints of the chain's tip (append-only).
- ``audit_head`` only moves forward: an UPDATE that lowers ``last_id`` and any DELETE
  are refused (moving the head back was how a truncated tail went unnoticed).
- PostgreSQL: ``TRUNCATE`` of ``audit_event``, ``audit_head`` and ``audit_checkpoint``
  is refused (row triggers never see a TRUNCATE).

``records.trail.checkpoints.REQUIRED_TRIGGERS`` names every trigger made here and in
0001; ``parkinglot audit verify`` fails when one of them is missing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 07:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_checkpoint',
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('head_hash', sa.String(length=64), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('at', sa.String(length=40), nullable=False),
        sa.Column('key_id', sa.String(length=80), nullable=False),
        sa.Column('signature', sa.String(length=128), nullable=False),
        sa.CheckConstraint('last_id >= 0 AND count >= 0', name=op.f('ck_audit_checkpoint_nonneg')),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_checkpoint')),
    )
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_checkpoint_no_{verb.lower()} BEFORE {verb} ON audit_checkpoint "
                       "BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only'); END")
        op.execute("CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
                   "WHEN NEW.last_id < OLD.last_id OR NEW.id <> OLD.id "
                   "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END")
        op.execute("CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
                   "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END")
    else:
        op.execute("CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint "
                   "FOR EACH ROW EXECUTE FUNCTION parkinglot_append_only()")
        op.execute("CREATE OR REPLACE FUNCTION parkinglot_forward_only() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION '% only moves forward', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql")
        # WHEN: the condition is checked without calling the function, so the head's UPDATE
        # at every lane event costs nothing more
        op.execute("CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head FOR EACH ROW "
                   "WHEN (NEW.last_id < OLD.last_id OR NEW.id <> OLD.id) "
                   "EXECUTE FUNCTION parkinglot_forward_only()")
        op.execute("CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head FOR EACH ROW "
                   "EXECUTE FUNCTION parkinglot_forward_only()")
        for table in ("audit_event", "audit_head", "audit_checkpoint"):
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION parkinglot_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("audit_head_forward_only", "audit_head_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for table in ("audit_event", "audit_head", "audit_checkpoint"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head")
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS parkinglot_forward_only()")
    op.drop_table('audit_checkpoint')  # its own triggers go with it
