"""visit_holds: offered windows held for a customer for a few minutes (issue 17, fair booking under load)

Revision ID: 0009_holds
Revises: 0008_nlu
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_holds'
down_revision = '0009_cluster'  # after the merge with branch cluster (the lead re-chains)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('visit_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engineer_id', sa.Integer(), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['engineer_id'], ['engineers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('engineer_id', 'start', name='uq_visit_hold_engineer_start')
    )
    op.create_index(op.f('ix_visit_holds_ticket_id'), 'visit_holds', ['ticket_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_visit_holds_ticket_id'), table_name='visit_holds')
    op.drop_table('visit_holds')
