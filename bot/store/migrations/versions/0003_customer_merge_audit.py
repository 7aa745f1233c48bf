"""Customer merge audit: who merged or unmerged two customer profiles, and what moved.

Revision ID: 0003_merge_audit
Revises: 0002_packages
Create Date: 2026-11-25 04:24:10.205395
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003_merge_audit'
down_revision: str | None = '0002_packages'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('customer_merge_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('source_customer_id', sa.Integer(), nullable=False),
    sa.Column('target_customer_id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_customer_id'], ['customers.id'], ),
    sa.ForeignKeyConstraint(['target_customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('customer_merge_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_merge_audit_source_customer_id'), ['source_customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_merge_audit_target_customer_id'), ['target_customer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('customer_merge_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_merge_audit_target_customer_id'))
        batch_op.drop_index(batch_op.f('ix_customer_merge_audit_source_customer_id'))

    op.drop_table('customer_merge_audit')
