"""account sessions: a per-user session version, and lockout alerts

- ``app_user.session_version``: put in the console session cookie at login and checked each
  time the session is loaded; logout, a password change, a role change and deactivation
  raise it, which ends every session of that user (a copied cookie stops working).
- ``alert.kind`` gains ``account_lockout`` (a login lockout is shown to the site's people).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

OLD_KINDS = ('hotlist', 'no_entry', 'ticket_mismatch', 'locked_vehicle', 'expired_stay', 'driver_failure',
             'event_id_reuse', 'stop_override')
NEW_KINDS = OLD_KINDS + ('account_lockout',)


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table('app_user') as batch:
        batch.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('alert') as batch:
        batch.drop_constraint(op.f('ck_alert_kind'), type_='check')
        batch.create_check_constraint('kind', _in('kind', NEW_KINDS))


def downgrade() -> None:
    conn = op.get_bind()
    alert = sa.table('alert', sa.column('kind', sa.String))
    conn.execute(alert.delete().where(alert.c.kind == 'account_lockout'))
    with op.batch_alter_table('alert') as batch:
        batch.drop_constraint(op.f('ck_alert_kind'), type_='check')
        batch.create_check_constraint('kind', _in('kind', OLD_KINDS))
    with op.batch_alter_table('app_user') as batch:
        batch.drop_column('session_version')
