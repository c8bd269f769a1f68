#!/system/bin/sh
# Installed by `sipc waydroid install` into Waydroid's vendor overlay
# (/var/lib/waydroid/overlay/vendor/bin/); `sipc waydroid uninstall` removes
# it. Run by secure_ipc_node.rc at every boot of the container.
#
# Creates /dev/secure_ipc from the major:minor the host's module publishes in
# sysfs (the container sees the host's /sys read-only), owned root:GID mode
# 0660, GID being the host's secure-ipc group. A node that already has the
# right numbers (bind-mounted by a config_nodes line) is left as it is.
# SIPC_NODE and SIPC_SYSFS_DEV exist for the project's tests only.

node=${SIPC_NODE:-/dev/secure_ipc}
major=
sysdev=${SIPC_SYSFS_DEV:-/sys/class/secure_ipc/secure_ipc/dev}
gid=@GID@

say() {
	echo "secure_ipc_node: $*" >&2
	log -t secure_ipc_node "$*" 2>/dev/null || :
}

if ! read -r dev <"$sysdev"; then
	say "cannot read $sysdev: the secure_ipc module is not loaded on the host"
	exit 1
fi
case "$dev" in
*[!0-9:]* | :* | *: | *:*:*) ;;
*:*)
	major=${dev%:*}
	minor=${dev#*:}
	;;
esac
if [ -z "$major" ]; then
	say "$sysdev holds '$dev', not MAJOR:MINOR"
	exit 1
fi

if [ -c "$node" ]; then
	set -- $(stat -L -c '%t %T' "$node")
	if [ "$#" -eq 2 ] && [ "$((0x$1))" -eq "$major" ] && [ "$((0x$2))" -eq "$minor" ]; then
		say "$node is already $major:$minor"
		exit 0
	fi
fi
if [ -e "$node" ] || [ -L "$node" ]; then
	if ! rm -f "$node"; then
		say "cannot remove the stale $node"
		exit 1
	fi
fi
if ! mknod -m 0660 "$node" c "$major" "$minor"; then
	say "mknod $node c $major $minor failed"
	exit 1
fi
if ! chown "0:$gid" "$node"; then
	rm -f "$node"
	say "chown 0:$gid $node failed"
	exit 1
fi
say "created $node as $major:$minor, root:$gid 0660"
exit 0
