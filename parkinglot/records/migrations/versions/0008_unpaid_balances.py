"""every car accounted for: unpaid balances, visitor-pass pricing, revocation reasons

- ``unpaid_balance``: what a stay still owed when its car was let out (a confirmed match,
  a manual exit, an evacuation), why, who approved it, and its write-off.
- ``site.visitor_pass_pricing``: ``tariff`` (existing sites: today's behaviour), ``free``
  or ``visitor_rate`` during a visitor pass's window.
- ``visitor_pass.revoke_reason``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CAUSES = ('confirm_match', 'manual_exit', 'emergency_exit')
PRICING = ('tariff', 'free', 'visitor_rate')


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _fk(table, column, target):
    return sa.ForeignKey(f'{target}.id', name=op.f(f'fk_{table}_{column}_{target}'))


def upgrade() -> None:
    with op.batch_alter_table('site') as batch:
        batch.add_column(sa.Column('visitor_pass_pricing', sa.String(16), nullable=False, server_default='tariff'))
        batch.create_check_constraint('visitor_pass_pricing', _in('visitor_pass_pricing', PRICING))
    op.add_column('visitor_pass', sa.Column('revoke_reason', sa.Text(), nullable=True))
    t = 'unpaid_balance'
    op.create_table(
        t,
        sa.Column('id', BIG_ID, primary_key=True),
        sa.Column('site_id', sa.Integer(), _fk(t, 'site_id', 'site'), nullable=False),
        sa.Column('session_id', BIG_ID, _fk(t, 'session_id', 'parking_session'), nullable=False),
        sa.Column('lane_id', sa.Integer(), _fk(t, 'lane_id', 'lane'), nullable=True),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('cause', sa.String(16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('approved_by', sa.Integer(), _fk(t, 'approved_by', 'app_user'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('written_off_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('written_off_by', sa.Integer(), _fk(t, 'written_off_by', 'app_user'), nullable=True),
        sa.Column('write_off_reason', sa.Text(), nullable=True),
        sa.Column('write_off_payment_id', BIG_ID, _fk(t, 'write_off_payment_id', 'payment'), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_unpaid_balance')),
        sa.UniqueConstraint('session_id', name=op.f('uq_unpaid_balance_session_id')),
        sa.CheckConstraint('amount_minor > 0', name=op.f('ck_unpaid_balance_amount_positive')),
        sa.CheckConstraint(_in('cause', CAUSES), name=op.f('ck_unpaid_balance_cause')),
        sa.CheckConstraint('length(reason) > 0', name=op.f('ck_unpaid_balance_reason_given')),
        sa.CheckConstraint('(written_off_at IS NULL) = (written_off_by IS NULL)'
                           ' AND (written_off_at IS NULL) = (write_off_payment_id IS NULL)',
                           name=op.f('ck_unpaid_balance_write_off_complete')),
    )
    op.create_index('ix_unpaid_balance_site_time', t, ['site_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_unpaid_balance_site_time', table_name='unpaid_balance')
    op.drop_table('unpaid_balance')
    with op.batch_alter_table('visitor_pass') as batch:
        batch.drop_column('revoke_reason')
    with op.batch_alter_table('site') as batch:
        batch.drop_constraint(op.f('ck_site_visitor_pass_pricing'), type_='check')
        batch.drop_column('visitor_pass_pricing')
