"""sign-in failures (console throttling)

Revision ID: 0007_guard
Revises: 0006_wechat
Create Date: 2026-12-04 16:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_guard'
down_revision = '0006_wechat'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sign_in_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sign_in_failures_name'), 'sign_in_failures', ['name'], unique=False)
    op.create_index(op.f('ix_sign_in_failures_address'), 'sign_in_failures', ['address'], unique=False)
    op.create_index(op.f('ix_sign_in_failures_at'), 'sign_in_failures', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_sign_in_failures_at'), table_name='sign_in_failures')
    op.drop_index(op.f('ix_sign_in_failures_address'), table_name='sign_in_failures')
    op.drop_index(op.f('ix_sign_in_failures_name'), table_name='sign_in_failures')
    op.drop_table('sign_in_failures')
