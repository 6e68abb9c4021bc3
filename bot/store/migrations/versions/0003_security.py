"""issue 18: one live visit per ticket, ticket access proofs, look-up attempts

Revision ID: 0003_security
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_security'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A ticket that already has more than one booked visit keeps the newest; the others are cancelled first, or the
    # index could not be built.
    op.execute("UPDATE visits SET status = 'cancelled' WHERE status = 'booked' AND id NOT IN "
               "(SELECT max_id FROM (SELECT max(id) AS max_id FROM visits WHERE status = 'booked' "
               "GROUP BY ticket_id) AS newest)")
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.create_index('uq_visit_ticket_live', ['ticket_id'], unique=True,
                              postgresql_where=sa.text("status = 'booked'"),
                              sqlite_where=sa.text("status = 'booked'"))
    op.create_table('ticket_access',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=160), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id', 'ticket_id', name='uq_ticket_access')
    )
    with op.batch_alter_table('ticket_access', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_access_conversation_id'), ['conversation_id'], unique=False)
    op.create_table('lookup_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lookup_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_lookup_attempts_scope_at', ['scope', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('lookup_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_lookup_attempts_scope_at')
    op.drop_table('lookup_attempts')
    with op.batch_alter_table('ticket_access', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_access_conversation_id'))
    op.drop_table('ticket_access')
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_index('uq_visit_ticket_live')
