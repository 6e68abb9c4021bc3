"""agents.skills: what an agent is good at (product categories), for routing hand-offs (issue 16)

Revision ID: 0009_live
Revises: 0008_nlu
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_live'
down_revision = '0009_holds'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.add_column(sa.Column('skills', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.drop_column('skills')
