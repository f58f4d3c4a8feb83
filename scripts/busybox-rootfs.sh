#!/usr/bin/env bash
# Builds a minimal busybox root filesystem in DIR from the host's static
# busybox (Debian's busybox-static, /usr/bin/busybox): DIR/bin/busybox, one
# symlink per applet in DIR/bin, /etc/passwd and /etc/group with root and
# nobody, and empty /proc /sys /dev /tmp mount points.
#
# usage: scripts/busybox-rootfs.sh DIR
#   BUSYBOX=/path/to/busybox overrides the source binary (it must be static).
set -euo pipefail

usage() { echo "usage: $0 DIR" >&2; exit 2; }
[ $# -eq 1 ] || usage
dir=$1
busybox=${BUSYBOX:-/usr/bin/busybox}

if [ ! -x "$busybox" ]; then
	echo "error: $busybox not found; install busybox-static (scripts/deps.sh)" >&2
	exit 1
fi
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
	echo "error: $dir exists and is not empty" >&2
	exit 1
fi

mkdir -p "$dir"
cd "$dir"
mkdir -p bin dev etc proc sys tmp root run var/tmp home
chmod 1777 tmp var/tmp
chmod 0700 root
install -m 0755 "$busybox" bin/busybox

# One link per applet. `busybox --list` names busybox itself too: linking it
# would replace the binary with a symlink to itself.
"$busybox" --list | while IFS= read -r applet; do
	case $applet in
	busybox | '' | */*) continue ;;
	esac
	[ -e "bin/$applet" ] || ln -s busybox "bin/$applet"
done

cat >etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >etc/group <<'GROUP'
root:x:0:
nobody:x:65534:
GROUP
echo berth >etc/hostname
cat >etc/hosts <<'HOSTS'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
HOSTS
: >etc/resolv.conf
