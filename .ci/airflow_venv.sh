#!/usr/bin/env bash
# Make sure Airflow's own venv holds requirements-airflow.txt; print its folder. Cached: a stamp of the
# file's sha256 skips the install when nothing changed (the venv outlives the clone, in AIRFLOW_VENV,
# default ~/.cache/etl-runner/airflow-venv). Airflow never goes into the runner's .venv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${AIRFLOW_VENV:-$HOME/.cache/etl-runner/airflow-venv}
want=$(sha256sum "$root/requirements-airflow.txt" | cut -d' ' -f1)
if [ -x "$venv/bin/airflow" ] && [ "$(cat "$venv/.requirements-airflow.sha256" 2>/dev/null)" = "$want" ]; then
    echo "$venv"
    exit 0
fi
python=$(command -v python3.11 || command -v python3.12 || command -v python3)
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv" >&2
start=$(date +%s)
echo "ci: installing Apache Airflow into $venv (requirements-airflow.txt)" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements-airflow.txt" >&2
echo "$want" > "$venv/.requirements-airflow.sha256"
echo "ci: Airflow installed in $(( $(date +%s) - start )) s" >&2
echo "$venv"
