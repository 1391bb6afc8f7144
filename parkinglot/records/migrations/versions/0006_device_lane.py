"""device bound to a lane

``device.lane_id``: a controller key may be bound to the one lane it serves (most
controllers serve one lane); a bound key used on another lane is refused with 403.
NULL keeps today's behaviour: the key acts on every lane of its site.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.add_column(sa.Column('lane_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_device_lane_id_lane', 'lane', ['lane_id'], ['id'])


def downgrade() -> None:
    device = sa.table('device', sa.column('lane_id', sa.Integer), sa.column('revoked_at', sa.DateTime))
    bound = op.get_bind().execute(sa.select(sa.func.count()).select_from(device)
                                  .where(device.c.lane_id.is_not(None), device.c.revoked_at.is_(None))).scalar()
    if bound:  # the key would silently work on every lane of its site: refuse instead
        raise RuntimeError("devices bound to a lane exist: revoke them before downgrading below 0006")
    with op.batch_alter_table('device') as batch:
        batch.drop_constraint('fk_device_lane_id_lane', type_='foreignkey')
        batch.drop_column('lane_id')
