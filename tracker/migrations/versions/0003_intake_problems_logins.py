"""Hostile input and shared login throttling: a reason on an order the intake refused to email (an address
that is not exactly one mailbox, say), and failed dashboard logins counted in the database so that several
daemons share one throttle.

Revision ID: 0003_intake_problems_logins
Revises: 0002_leases_and_courier_budgets
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_intake_problems_logins"
down_revision = "0002_leases_and_courier_budgets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order") as batch_op:
        # existing orders had nothing refused; the default only fills them in
        batch_op.add_column(sa.Column("problem", sa.String(), nullable=False, server_default=""))
    with op.batch_alter_table("order") as batch_op:
        batch_op.alter_column("problem", server_default=None)
    op.create_table(
        "loginfailure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_loginfailure_client_at", "loginfailure", ["client", "at"])
    op.create_index("ix_webhookdelivery_status_received_at", "webhookdelivery", ["status", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_webhookdelivery_status_received_at", table_name="webhookdelivery")
    op.drop_index("ix_loginfailure_client_at", table_name="loginfailure")
    op.drop_table("loginfailure")
    with op.batch_alter_table("order") as batch_op:
        batch_op.drop_column("problem")
