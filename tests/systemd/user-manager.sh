#!/usr/bin/env bash
# Runs a command beside a real `systemd --user` and journald, in a private mount namespace, so that
# the host's /run/systemd is untouched (the script enters one with unshare). Needs root
# (CAP_SYS_ADMIN). Usage:
#   tests/systemd/user-manager.sh COMMAND [ARG...]
# COMMAND gets XDG_RUNTIME_DIR and XDG_CONFIG_HOME of the manager, GATEWAY_JOURNAL_DIR (read it
# with `journalctl -D`), and SYSTEMD_HARNESS=1. The exit status is COMMAND's.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "user-manager.sh: needs root for its private mount namespace" >&2
  exit 77
fi
# Everything below mounts over /run/systemd: only ever in a mount namespace of our own.
if [ "${GATEWAY_SYSTEMD_NS:-}" != "$$" ]; then
  exec unshare -m --propagation private env GATEWAY_SYSTEMD_NS=self bash -c 'GATEWAY_SYSTEMD_NS=$$ exec bash "$0" "$@"' "$0" "$@"
fi
systemd_bin=/lib/systemd/systemd
journald_bin=/lib/systemd/systemd-journald
for b in "$systemd_bin" "$journald_bin"; do
  [ -x "$b" ] || { echo "user-manager.sh: $b is missing: apt-get install systemd" >&2; exit 77; }
done

T=$(mktemp -d /tmp/gateway-systemd.XXXXXX)
mkdir -p "$T/run-systemd/system" "$T/run-log" "$T/var-log-journal" "$T/xdg-config/systemd/user"
install -d -m 0700 "$T/xdg-run"
mkdir -p /run/systemd
mount --bind "$T/run-systemd" /run/systemd
mkdir -p /run/log
mount --bind "$T/run-log" /run/log
# Hide a host's persistent journal; where there is none, journald keeps to /run/log/journal.
if [ -d /var/log/journal ]; then mount --bind "$T/var-log-journal" /var/log/journal; fi
mkdir -p /run/systemd/journal

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  umount /var/log/journal 2>/dev/null || true
  umount /run/log /run/systemd 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
# A timeout's TERM ends the command too, and still runs the cleanup.
trap 'exit 143' TERM INT

"$journald_bin" &
pids+=($!)
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done

export XDG_RUNTIME_DIR="$T/xdg-run" XDG_CONFIG_HOME="$T/xdg-config"
# The manager passes its own environment to services: start it with a clean one, as at login.
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/root}" LANG=C.UTF-8 \
  XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" XDG_CONFIG_HOME="$XDG_CONFIG_HOME" \
  "$systemd_bin" --user >"$T/systemd.log" 2>&1 &
manager=$!
# Stopped first (before journald), so that it stops its services.
pids=("$manager" "${pids[@]}")
state=""
for _ in $(seq 300); do
  state=$(systemctl --user is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.1
done
case "$state" in
  running|degraded) ;;
  *) echo "user-manager.sh: systemd --user did not come up (state: ${state:-none})" >&2; cat "$T/systemd.log" >&2; exit 1 ;;
esac

export GATEWAY_JOURNAL_DIR=/run/log/journal SYSTEMD_HARNESS=1
set +e
# In the background, so that a TERM is handled at once rather than after the command.
"$@" &
command_pid=$!
pids=("$command_pid" "${pids[@]}")
wait "$command_pid"
status=$?
set -e
exit "$status"
