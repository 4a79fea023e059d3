#!/usr/bin/env bash
# Installs the Synapse Matrix homeserver (PyPI matrix-synapse, pinned) into a venv cached under
# $GATEWAY_SYNAPSE_CACHE (default ~/.cache/gateway-synapse), keyed by the version, for
# tests/e2e/channels_matrix.rs. Prints the venv's python. Needs python3 with venv and pip; the
# first install downloads about 60 MB of wheels and takes a minute; later runs print the path.
set -euo pipefail

SYNAPSE_VERSION=1.163.2
cache=${GATEWAY_SYNAPSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gateway-synapse}
venv=$cache/matrix-synapse-$SYNAPSE_VERSION

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

if [ ! -x "$venv/bin/register_new_matrix_user" ]; then
  echo "tests/matrix/install.sh: installing matrix-synapse $SYNAPSE_VERSION into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || { echo "python3 cannot make a venv: install it (apt-get install python3-venv)" >&2; exit 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION" >&2
fi
echo "$venv/bin/python"
