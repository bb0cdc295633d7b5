#!/bin/bash
# Run a command inside the container (all its namespaces, a clean environment). usage: D=... in.sh [-u USER] CMD...
# With -u, the command runs as USER with USER's HOME, USER and LOGNAME, as a login would set them. stdin passes through.
set -euo pipefail
D=${D:?set D to the dir up.sh printed}
NSPAWN=$(pgrep -P "$(cat "$D/timeout.pid")" | head -1)
LEADER=$(pgrep -P "$NSPAWN" | head -1)
ENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LANG=C.UTF-8 container=systemd-nspawn)
if [[ ${1:-} = -u ]]; then
  U=$2; shift 2
  # getent inside the container: users added there exist only there.
  exec nsenter -t "$LEADER" -m -u -i -n -p -C -r -w -- /usr/bin/env -i "${ENV[@]}" /bin/sh -c \
    'u=$1; shift; h=$(getent passwd "$u" | cut -d: -f6); exec env HOME="$h" USER="$u" LOGNAME="$u" runuser -u "$u" -- "$@"' in.sh "$U" "$@"
fi
exec nsenter -t "$LEADER" -m -u -i -n -p -C -r -w -- /usr/bin/env -i "${ENV[@]}" HOME=/root "$@"
