"""attachment_blobs: attachments kept in the database for the cluster profile (issue 17)

Revision ID: 0009_cluster
Revises: 0008_nlu
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_cluster'
down_revision = '0008_nlu'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attachment_blobs',
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('attachment_id', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attachment_id'], ['attachments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index(op.f('ix_attachment_blobs_attachment_id'), 'attachment_blobs', ['attachment_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_attachment_blobs_attachment_id'), table_name='attachment_blobs')
    op.drop_table('attachment_blobs')
