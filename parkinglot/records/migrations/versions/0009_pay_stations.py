"""pay stations: device kinds, payment methods mobile and validation, voids, terminal references

- ``device.kind``: ``lane_controller`` (every existing key) or ``pay_station``; a key of
  one kind is refused by the other kind's endpoints.
- ``payment.method`` gains ``mobile`` and ``validation``; ``payment.kind`` gains ``void``
  (a payment recorded by mistake is cancelled by a new row, never edited), with
  ``voids_id`` naming the payment it cancels (at most once).
- ``payment.terminal_ref``: the pay station's own transaction reference.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 07:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_METHODS = ('cash', 'card', 'app', 'permit_fee', 'adjustment')
NEW_METHODS = OLD_METHODS + ('mobile', 'validation')
OLD_SIGN = ("(kind = 'payment' AND amount_minor > 0) OR (kind = 'refund' AND amount_minor < 0)"
            " OR (kind = 'adjustment' AND amount_minor <> 0)")
NEW_SIGN = ("(kind = 'payment' AND amount_minor > 0) OR (kind IN ('refund', 'void') AND amount_minor < 0)"
            " OR (kind = 'adjustment' AND amount_minor <> 0)")


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table('device') as batch:
        batch.add_column(sa.Column('kind', sa.String(16), nullable=False, server_default='lane_controller'))
        batch.create_check_constraint('kind', _in('kind', ('lane_controller', 'pay_station')))
    with op.batch_alter_table('payment') as batch:
        batch.add_column(sa.Column('voids_id', BIG_ID, nullable=True))
        batch.add_column(sa.Column('terminal_ref', sa.String(64), nullable=True))
        batch.create_foreign_key('fk_payment_voids_id_payment', 'payment', ['voids_id'], ['id'])
        batch.drop_constraint(op.f('ck_payment_kind'), type_='check')
        batch.drop_constraint(op.f('ck_payment_method'), type_='check')
        batch.drop_constraint(op.f('ck_payment_amount_sign'), type_='check')
        batch.create_check_constraint('kind', _in('kind', ('payment', 'refund', 'adjustment', 'void')))
        batch.create_check_constraint('method', _in('method', NEW_METHODS))
        batch.create_check_constraint('amount_sign', NEW_SIGN)
        batch.create_check_constraint('void_names_payment', "(kind = 'void') = (voids_id IS NOT NULL)")
        batch.create_index('uq_payment_voids', ['voids_id'], unique=True)


def downgrade() -> None:
    conn = op.get_bind()
    payment = sa.table('payment', sa.column('kind', sa.String), sa.column('method', sa.String))
    rollup = sa.table('revenue_day', sa.column('kind', sa.String), sa.column('method', sa.String))
    # voids and the new methods cannot be expressed in the old schema: they go (with their roll-up rows)
    for t in (rollup, payment):
        conn.execute(t.delete().where(t.c.kind == 'void'))
        conn.execute(t.delete().where(t.c.method.in_(('mobile', 'validation'))))
    with op.batch_alter_table('payment') as batch:
        batch.drop_index('uq_payment_voids')
        batch.drop_constraint(op.f('ck_payment_void_names_payment'), type_='check')
        batch.drop_constraint(op.f('ck_payment_amount_sign'), type_='check')
        batch.drop_constraint(op.f('ck_payment_method'), type_='check')
        batch.drop_constraint(op.f('ck_payment_kind'), type_='check')
        batch.create_check_constraint('kind', _in('kind', ('payment', 'refund', 'adjustment')))
        batch.create_check_constraint('method', _in('method', OLD_METHODS))
        batch.create_check_constraint('amount_sign', OLD_SIGN)
        batch.drop_constraint('fk_payment_voids_id_payment', type_='foreignkey')
        batch.drop_column('terminal_ref')
        batch.drop_column('voids_id')
    device = sa.table('device', sa.column('kind', sa.String), sa.column('revoked_at', sa.DateTime))
    # a pay station's key would become a lane controller's: revoke none silently, refuse instead
    if conn.execute(sa.select(sa.func.count()).select_from(device).where(device.c.kind == 'pay_station')).scalar():
        raise RuntimeError("pay station devices exist: revoke and delete them before downgrading below 0006")
    with op.batch_alter_table('device') as batch:
        batch.drop_constraint(op.f('ck_device_kind'), type_='check')
        batch.drop_column('kind')
