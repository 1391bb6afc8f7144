"""gate rules: site visitor policy and plate regions, event request digests, look-alike stop keys, passages

- ``site``: ``plate_regions`` (a list, from the old single ``plate_region``), ``kind``,
  ``visitors``, ``lapsed_credential_days``, ``free_format_min_confidence``. Existing sites
  keep today's behaviour: kind ``public``, visitors ``open``.
- ``plate_read``: ``request_digest``, ``retry_of_id``, ``reused_event_id`` (an event id binds
  the request sent with it).
- ``stop_key``: confusion-aware keys of every hotlist entry and vehicle lock, filled here
  for the existing ones.
- ``lane_passage``: a barrier's report that the car of an ``open`` has passed.
- ``alert.kind`` gains ``event_id_reuse`` and ``stop_override``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 04:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from parkinglot import plates

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
PLATE = sa.String(length=16).with_variant(postgresql.VARCHAR(16, collation="C"), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_KINDS = ('hotlist', 'no_entry', 'ticket_mismatch', 'locked_vehicle', 'expired_stay', 'driver_failure')
NEW_KINDS = OLD_KINDS + ('event_id_reuse', 'stop_override')


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table('site') as batch:
        batch.add_column(sa.Column('plate_regions', JSON, nullable=True))
        batch.add_column(sa.Column('kind', sa.String(16), nullable=False, server_default='public'))
        batch.add_column(sa.Column('visitors', sa.String(16), nullable=False, server_default='open'))
        batch.add_column(sa.Column('lapsed_credential_days', sa.Integer(), nullable=False, server_default='90'))
        batch.add_column(sa.Column('free_format_min_confidence', sa.Float(), nullable=False, server_default='0.8'))
    site = sa.table('site', sa.column('id', sa.Integer), sa.column('plate_region', sa.String),
                    sa.column('plate_regions', JSON))
    conn = op.get_bind()
    for site_id, region in conn.execute(sa.select(site.c.id, site.c.plate_region)).all():
        conn.execute(site.update().where(site.c.id == site_id).values(plate_regions=[region or 'us']))
    with op.batch_alter_table('site') as batch:
        batch.alter_column('plate_regions', existing_type=JSON, nullable=False)
        batch.drop_column('plate_region')
        batch.create_check_constraint('kind', _in('kind', ('public', 'residential', 'private')))
        batch.create_check_constraint('visitors', _in('visitors', ('open', 'attendant', 'refuse')))
        batch.create_check_constraint('lapsed_credential_days', 'lapsed_credential_days >= 0')
        batch.create_check_constraint('free_format_min_confidence',
                                      'free_format_min_confidence >= 0 AND free_format_min_confidence <= 1')

    op.add_column('plate_read', sa.Column('request_digest', sa.String(64), nullable=True))
    if conn.dialect.name == 'sqlite':  # ADD COLUMN .. REFERENCES, without copying a big table (batch mode would)
        op.execute('ALTER TABLE plate_read ADD COLUMN retry_of_id INTEGER REFERENCES plate_read (id)')
    else:
        op.add_column('plate_read', sa.Column('retry_of_id', BIG_ID, nullable=True))
        op.create_foreign_key('fk_plate_read_retry_of_id_plate_read', 'plate_read', 'plate_read',
                              ['retry_of_id'], ['id'])
    op.add_column('plate_read', sa.Column('reused_event_id', sa.String(64), nullable=True))
    op.create_index('ix_plate_read_retry_of', 'plate_read', ['retry_of_id'])

    op.create_table(
        'stop_key',
        sa.Column('id', BIG_ID, primary_key=True),
        sa.Column('key', PLATE, nullable=False),
        sa.Column('hotlist_entry_id', sa.Integer(), sa.ForeignKey('hotlist_entry.id', name='fk_stop_key_hotlist_entry_id_hotlist_entry'), nullable=True),
        sa.Column('vehicle_lock_id', sa.Integer(), sa.ForeignKey('vehicle_lock.id', name='fk_stop_key_vehicle_lock_id_vehicle_lock'), nullable=True),
        sa.CheckConstraint('(hotlist_entry_id IS NULL) <> (vehicle_lock_id IS NULL)', name='ck_stop_key_one_target'),
        sa.PrimaryKeyConstraint('id', name='pk_stop_key'),
    )
    op.create_index('ix_stop_key_key', 'stop_key', ['key'])
    op.create_index('ix_stop_key_hotlist_entry_id', 'stop_key', ['hotlist_entry_id'])
    op.create_index('ix_stop_key_vehicle_lock_id', 'stop_key', ['vehicle_lock_id'])
    stop_key = sa.table('stop_key', sa.column('key', sa.String), sa.column('hotlist_entry_id', sa.Integer),
                        sa.column('vehicle_lock_id', sa.Integer))
    for table, column in (('hotlist_entry', 'hotlist_entry_id'), ('vehicle_lock', 'vehicle_lock_id')):
        t = sa.table(table, sa.column('id', sa.Integer), sa.column('plate', sa.String))
        rows = [{'key': key, 'hotlist_entry_id': None, 'vehicle_lock_id': None, column: row_id}
                for row_id, plate in conn.execute(sa.select(t.c.id, t.c.plate)).all()
                for key in sorted(plates.index_keys(plate))]
        if rows:
            conn.execute(stop_key.insert(), rows)

    op.create_table(
        'lane_passage',
        sa.Column('id', BIG_ID, primary_key=True),
        sa.Column('lane_id', sa.Integer(), sa.ForeignKey('lane.id', name='fk_lane_passage_lane_id_lane'), nullable=False),
        sa.Column('decision_id', BIG_ID, sa.ForeignKey('decision.id', name='fk_lane_passage_decision_id_decision'), nullable=False),
        sa.Column('device_id', sa.Integer(), sa.ForeignKey('device.id', name='fk_lane_passage_device_id_device'), nullable=True),
        sa.Column('passed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_lane_passage'),
        sa.UniqueConstraint('decision_id', name='uq_lane_passage_decision_id'),
    )

    with op.batch_alter_table('alert') as batch:
        batch.drop_constraint(op.f('ck_alert_kind'), type_='check')
        batch.create_check_constraint('kind', _in('kind', NEW_KINDS))


def downgrade() -> None:
    conn = op.get_bind()
    alert = sa.table('alert', sa.column('kind', sa.String))
    conn.execute(alert.delete().where(alert.c.kind.in_(('event_id_reuse', 'stop_override'))))
    with op.batch_alter_table('alert') as batch:
        batch.drop_constraint(op.f('ck_alert_kind'), type_='check')
        batch.create_check_constraint('kind', _in('kind', OLD_KINDS))
    op.drop_table('lane_passage')
    op.drop_index('ix_stop_key_vehicle_lock_id', table_name='stop_key')
    op.drop_index('ix_stop_key_hotlist_entry_id', table_name='stop_key')
    op.drop_index('ix_stop_key_key', table_name='stop_key')
    op.drop_table('stop_key')
    op.drop_index('ix_plate_read_retry_of', table_name='plate_read')
    with op.batch_alter_table('plate_read') as batch:
        batch.drop_column('reused_event_id')
        batch.drop_column('retry_of_id')
        batch.drop_column('request_digest')
    with op.batch_alter_table('site') as batch:
        batch.add_column(sa.Column('plate_region', sa.String(8), nullable=False, server_default='us'))
    site = sa.table('site', sa.column('id', sa.Integer), sa.column('plate_region', sa.String),
                    sa.column('plate_regions', JSON))
    for site_id, regions in conn.execute(sa.select(site.c.id, site.c.plate_regions)).all():
        conn.execute(site.update().where(site.c.id == site_id).values(plate_region=(regions or ['us'])[0]))
    with op.batch_alter_table('site') as batch:
        for name in ('free_format_min_confidence', 'lapsed_credential_days', 'visitors', 'kind'):
            batch.drop_constraint(op.f(f'ck_site_{name}'), type_='check')
        batch.drop_column('free_format_min_confidence')
        batch.drop_column('lapsed_credential_days')
        batch.drop_column('visitors')
        batch.drop_column('kind')
        batch.drop_column('plate_regions')
