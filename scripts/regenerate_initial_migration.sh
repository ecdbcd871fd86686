#!/usr/bin/env bash
# Development helper while the schema has not shipped: rebuild the single initial migration
# from the models. Once a release is out, add new revisions with `alembic revision --autogenerate`.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f reminders/migrations/versions/0001_initial.py
python - "$tmp" <<'PY'
import sys
from alembic import command
from reminders.migrations import alembic_config
cfg = alembic_config(f"sqlite:///{sys.argv[1]}/blank.db")
command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
PY
mv reminders/migrations/versions/0001_initial_schema.py reminders/migrations/versions/0001_initial.py
rm -rf "$tmp"
echo "rebuilt reminders/migrations/versions/0001_initial.py"
