"""closed loops: visit outcomes (done / no-show / late), the call-back "done" mark on hand-offs, events by kind

Revision ID: 0005_loops
Revises: 0004_outbox
Create Date: 2026-12-04 16:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_loops'
down_revision = '0004_outbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('outcome_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('late_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('late_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_visits_engineer_start', ['engineer_id', 'start'], unique=False)
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('callback_done_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('callback_done_by', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_handoffs_callback_done_by_agents', 'agents', ['callback_done_by'], ['id'],
                                    ondelete='SET NULL')
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_events_kind_at', ['kind', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_events_kind_at')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_handoffs_callback_done_by_agents', type_='foreignkey')
        batch_op.drop_column('callback_done_by')
        batch_op.drop_column('callback_done_at')
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_index('ix_visits_engineer_start')
        batch_op.drop_column('late_at')
        batch_op.drop_column('late_minutes')
        batch_op.drop_column('outcome_by')
        batch_op.drop_column('outcome_at')
