#!/bin/bash
# Power the container off (clean), then remove its mounts, cgroups and files. usage: down.sh D
set -uo pipefail
D=${1:?usage: down.sh D}
[[ -f $D/timeout.pid ]] || { echo "down.sh: $D is not a container dir" >&2; exit 1; }
TP=$(cat "$D/timeout.pid")
NSPAWN=$(pgrep -P "$TP" | head -1 || true)
LEADER=$( [[ -n $NSPAWN ]] && pgrep -P "$NSPAWN" | head -1 || true)
# SIGTERM to nspawn = SIGRTMIN+3 to the container's systemd = a clean `systemctl poweroff` inside
[[ -n $NSPAWN ]] && kill -TERM "$NSPAWN"
for _ in $(seq 1 60); do kill -0 "$TP" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$TP" 2>/dev/null; then   # stuck: SIGKILL the container's PID 1 (from outside), then nspawn
  echo "down.sh: clean poweroff timed out; SIGKILL" >&2
  [[ -n $LEADER ]] && kill -KILL "$LEADER"; sleep 1; [[ -n $NSPAWN ]] && kill -KILL "$NSPAWN" 2>/dev/null
  sleep 1
fi
# Lazily if busy; never rm -rf through a mounted overlay.
for m in "$D/root" "$D/rw"; do mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }; done
if mountpoint -q "$D/root" || mountpoint -q "$D/rw"; then echo "down.sh: $D is still mounted; left in place" >&2; exit 1; fi
while read -r c; do [[ -d $c ]] && find "$c" -depth -type d -exec rmdir {} \; ; done < "$D/cgroups"
rm -rf "$D"
# nspawn's host-side helper dirs (empty once it exited); rmdir fails harmlessly while another container uses them
rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn 2>/dev/null
exit 0
