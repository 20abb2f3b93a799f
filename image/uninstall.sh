#!/bin/sh
# Removes VWED Edge. Configuration (/etc/vwed-edge) and data (/var/lib/vwed-edge) stay
# unless --purge is given.
set -eu
purge=0
[ "${1:-}" = "--purge" ] && purge=1
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: must run as root" >&2; exit 1; }
if [ -d /run/systemd/system ]; then
    systemctl disable --now vwed-edge.service 2>/dev/null || true
fi
rm -f /etc/systemd/system/vwed-edge.service
[ -d /run/systemd/system ] && systemctl daemon-reload
rm -rf /opt/vwed-edge
if [ "$purge" = 1 ]; then
    rm -rf /etc/vwed-edge /var/lib/vwed-edge /var/lib/private/vwed-edge
    if id vwed-edge >/dev/null 2>&1; then userdel vwed-edge 2>/dev/null || deluser vwed-edge 2>/dev/null || true; fi
fi
echo "uninstall.sh: removed vwed-edge${purge:+ }$( [ "$purge" = 1 ] && echo '(with config and data)')"
