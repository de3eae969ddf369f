"""`python -m tracker.migrations "add coupon notes"`: write the next revision script from the models.

It builds a scratch in-memory SQLite database at the current newest revision and lets Alembic's
autogenerate compare it with `tracker.models`; the script lands in versions/ as NNNN_slug.py, to be read
and corrected by hand (autogenerate misses renames, enum value changes and data moves).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sqlalchemy import create_engine

from tracker.schema import BUNDLED, MIGRATIONS, Migrations

MAX_ID = 32  # alembic_version.version_num is VARCHAR(32)


def next_revision_id(existing: tuple[str, ...], message: str) -> str:
    """`0002_add_coupon_notes`: the next number and a slug of the message, short enough to store."""
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    if not slug:
        raise ValueError(f"the message {message!r} has no letters or digits to name the revision after")
    number = int(existing[-1][:4]) + 1 if existing else 1
    return f"{number:04d}_{slug}"[:MAX_ID].rstrip("_")


def write_revision(message: str, migrations: Migrations = BUNDLED, into: Path = MIGRATIONS / "versions") -> Path:
    """Autogenerate the next revision into the folder `into`; returns the new script's path."""
    from alembic import command

    try:
        existing = migrations.revisions
    except RuntimeError:  # the very first revision
        existing = ()
    rev_id = next_revision_id(existing, message)
    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as connection:
            config = migrations.alembic_config(connection)
            config.set_main_option("file_template", "%%(rev)s")
            if existing:
                command.upgrade(config, existing[-1])
            command.revision(config, message, autogenerate=True, rev_id=rev_id,
                             version_path=str(into))
    finally:
        scratch.dispose()
    return into / f"{rev_id}.py"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print('usage: python -m tracker.migrations "what changed"', file=sys.stderr)
        return 2
    path = write_revision(argv[0])
    print(f"wrote {path}: review it, then run pytest tests/tracker/test_migrations.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
