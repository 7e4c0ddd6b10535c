#!/usr/bin/env bash
# The main job: a deployment fails, the cause is fixed, and the execution is resumed
# exactly where it stopped. Runs on the default embedded store (SQLite under
# $DALSEGNO_HOME, default ~/.dalsegno).
set -euo pipefail
cd "$(dirname "$0")"
home="${DALSEGNO_HOME:-$HOME/.dalsegno}"
mkdir -p "$home"
rm -f "$home/dns-unlocked"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Run the deployment (configure_dns will fail: its zone is locked)"
set +e
dalsegno run deploy.py:deploy -p hosts=3 -p version='"2.1"'
code=$?
set -e
echo "exit code: $code (1 = failed)"
id=$(dalsegno executions list --status failed --json \
     | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

step "2. What failed"
dalsegno executions get "$id"

step "3. What a resume would do (nothing is changed by --dry-run)"
dalsegno executions resume "$id" --dry-run

step "4. Fix the cause"
touch "$home/dns-unlocked"
echo "created $home/dns-unlocked"

step "5. Resume: the VMs are kept, only configure_dns and app run"
dalsegno executions resume "$id"

step "6. The execution, completed"
dalsegno executions get "$id"
