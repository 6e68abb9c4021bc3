"""nlu_choices: clarification answers kept as labelled examples (issue 15)

Revision ID: 0008_nlu
Revises: 0007_guard
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_nlu'
down_revision = '0007_guard'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nlu_choices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('conversation_id', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('predicted', sa.String(length=64), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('offered', sa.JSON(), nullable=False),
    sa.Column('chosen', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_nlu_choices_created_at'), 'nlu_choices', ['created_at'], unique=False)
    op.create_index(op.f('ix_nlu_choices_conversation_id'), 'nlu_choices', ['conversation_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_nlu_choices_conversation_id'), table_name='nlu_choices')
    op.drop_index(op.f('ix_nlu_choices_created_at'), table_name='nlu_choices')
    op.drop_table('nlu_choices')
