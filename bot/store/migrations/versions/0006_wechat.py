"""wechat: shared access token, inbound de-duplication, followers' 48-hour window, held messages

Revision ID: 0006_wechat
Revises: 0005_loops
Create Date: 2026-12-04 16:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_wechat'
down_revision = '0005_loops'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_tokens',
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('access_token', sa.String(length=512), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('app_id')
    )
    op.create_table('wechat_inbound',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('msg_key', sa.String(length=160), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('msg_key')
    )
    with op.batch_alter_table('wechat_inbound', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wechat_inbound_openid'), ['openid'], unique=False)
        batch_op.create_index(batch_op.f('ix_wechat_inbound_received_at'), ['received_at'], unique=False)
    op.create_table('wechat_users',
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('menu', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('openid')
    )
    op.create_table('wechat_held',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('messages', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('wechat_held', schema=None) as batch_op:
        batch_op.create_index('ix_wechat_held_openid_pending', ['openid', 'sent_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wechat_held', schema=None) as batch_op:
        batch_op.drop_index('ix_wechat_held_openid_pending')
    op.drop_table('wechat_held')
    op.drop_table('wechat_users')
    with op.batch_alter_table('wechat_inbound', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wechat_inbound_received_at'))
        batch_op.drop_index(batch_op.f('ix_wechat_inbound_openid'))
    op.drop_table('wechat_inbound')
    op.drop_table('wechat_tokens')
