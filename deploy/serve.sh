#!/bin/sh
# The start command of the Python images: runs lectern_$LECTERN_SERVICE on all interfaces at
# $PORT, handed over as the service's own settings (chat reads CHAT_HOST and CHAT_PORT).
# IPv4 unless LISTEN_HOST says otherwise (`::` on an IPv6-only private network: docs/deploy.md).
set -eu
prefix=$(printf '%s' "$LECTERN_SERVICE" | tr '[:lower:]' '[:upper:]')
export "${prefix}_HOST=${LISTEN_HOST:-0.0.0.0}" "${prefix}_PORT=${PORT}"
exec python -m "lectern_${LECTERN_SERVICE}"
