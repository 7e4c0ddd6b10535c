#!/usr/bin/env bash
# Create a separate virtualenv with DBOS Transact for the peer benchmark.
#
# Usage:  bash benchmarks/peers/setup_dbos_venv.sh
# Venv path: ${DBOS_VENV:-$HOME/.cache/dalsegno-bench/dbos-venv}
# Idempotent: does nothing if the venv's python already imports dbos.
# Then run: "$DBOS_VENV/bin/python" benchmarks/peers/dbos_chain.py
set -euo pipefail

VENV="${DBOS_VENV:-$HOME/.cache/dalsegno-bench/dbos-venv}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import dbos" 2>/dev/null; then
    echo "dbos already installed in $VENV"
    exit 0
fi

mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet dbos
"$VENV/bin/python" -c "import importlib.metadata as m; print('installed dbos', m.version('dbos'), 'in $VENV')"
