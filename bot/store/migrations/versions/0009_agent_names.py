"""agents.display_name_zh / display_name_en: the name customers see, per language (issue 16)

Revision ID: 0009_agent_names
Revises: 0008_nlu
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_agent_names'
down_revision = '0008_nlu'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.add_column(sa.Column('display_name_zh', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('display_name_en', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.drop_column('display_name_en')
        batch.drop_column('display_name_zh')
