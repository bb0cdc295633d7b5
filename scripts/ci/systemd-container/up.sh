#!/bin/bash
# Boot a real systemd (the machine's own, Debian 12's 252) in a systemd-nspawn container whose root is a private
# overlay of / (writes land in a tmpfs upper layer; the machine's files are never written). From
# /work/shared/recipes/systemd-container, for the container suite (test/container/) and for trying units by hand.
#
# usage: up.sh [FILE...]   -> prints the container dir D. Each FILE is copied into the container's /root first.
#   D/name        the machine name (unique per boot: several suites or people may boot at once)
#   D/timeout.pid the timeout wrapping nspawn (nspawn = its child, the container's PID 1 = nspawn's child)
#   D/root        the container's root as the machine sees it; D/console.log its console
# Then in.sh runs commands inside, down.sh powers it off and removes everything.
#
# Never boot systemd without this overlay and --private-network: its tmpfiles step would empty the machine's /tmp,
# and networkd & co. would reconfigure the machine's interfaces.
set -euo pipefail
[[ $(id -u) -eq 0 ]] || { echo "up.sh: must run as root (mount, nspawn)" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || { echo "up.sh: systemd-nspawn is missing: V=\$(dpkg-query -W -f='\${Version}' systemd); apt-get install -y --no-install-recommends \"systemd-container=\$V\"" >&2; exit 1; }
if [[ -d /run/systemd/system ]]; then
  # A machine whose PID 1 is systemd owns the cgroup tree; this script moves itself into cgroups of its own.
  echo "up.sh: the machine runs systemd itself; this harness is for machines that do not (CI's image, this one)" >&2
  exit 1
fi
NAME=${NAME:-nfs-sd-$$}
D=$(mktemp -d /var/tmp/nfs-sd.XXXXXX)
echo "$NAME" > "$D/name"
mkdir "$D/rw" "$D/root"
mount -t tmpfs -o size=4g,mode=0755 "$NAME-rw" "$D/rw"
mkdir "$D/rw/up" "$D/rw/work"
mount -t overlay "$NAME-root" -o "lowerdir=/,upperdir=$D/rw/up,workdir=$D/rw/work" "$D/root"
R=$D/root
# Units that could touch the machine's kernel or shared state, its services, gettys, timers: masked inside.
for u in systemd-sysctl.service systemd-modules-load.service kmod-static-nodes.service \
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-udev-trigger.service \
  systemd-udev-settle.service systemd-hwdb-update.service systemd-random-seed.service \
  systemd-machine-id-commit.service systemd-timesyncd.service systemd-networkd.service systemd-networkd.socket \
  systemd-networkd-wait-online.service systemd-resolved.service systemd-binfmt.service \
  proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount systemd-remount-fs.service \
  systemd-pstore.service systemd-quotacheck.service systemd-fsck-root.service systemd-boot-update.service \
  getty@tty1.service getty.target console-getty.service serial-getty@.service container-getty@.service \
  e2scrub_reap.service e2scrub_all.timer fstrim.timer apt-daily.timer apt-daily-upgrade.timer man-db.timer \
  dpkg-db-backup.timer munge.service postgresql.service slurmctld.service slurmd.service cron.service \
  ssh.service machines.target systemd-machined.service sys-kernel-debug.mount sys-kernel-tracing.mount \
  sys-kernel-config.mount sys-fs-fuse-connections.mount dev-hugepages.mount etcd.service \
  systemd-tmpfiles-clean.timer; do
  ln -sfn /dev/null "$R/etc/systemd/system/$u"
done
for f in "$@"; do cp -- "$f" "$R/root/"; done
# Cgroups of its own (nothing else manages the tree here): the hybrid layout (name=systemd + cgroup2), or cgroup2 alone.
if [[ -d /sys/fs/cgroup/systemd ]]; then CG=(/sys/fs/cgroup/systemd/$NAME /sys/fs/cgroup/unified/$NAME); else CG=(/sys/fs/cgroup/$NAME); fi
printf '%s\n' "${CG[@]}" > "$D/cgroups"
(
  for c in "${CG[@]}"; do mkdir -p "$c"; echo "$BASHPID" > "$c/cgroup.procs"; done
  # MAXLIFE: a container a crashed test left behind powers itself off (SIGTERM to nspawn, SIGKILL 20 s later).
  exec timeout -k 20 "${MAXLIFE:-1800}" systemd-nspawn -D "$R" -M "$NAME" --boot --private-network \
    --register=no --keep-unit --link-journal=no --console=read-only --timezone=off --resolv-conf=off
) > "$D/console.log" 2>&1 < /dev/null &
echo $! > "$D/timeout.pid"
echo "$D"
