#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Runs in the host-root guest of `cargo xtask test` (xtask/src/lxc.rs), as
# root, with the module loaded: real LXC containers (Debian's lxc) started
# by lxc-start from Waydroid's own container settings plus the node line,
# and the real `sipc` on both sides. Argument: a static sipc binary.
# Prints `test NAME ... ok|FAILED` per check and `N passed, N failed`.
set -u
sipc_bin=$1
msgs=100000
size=64
P=/tmp/sipc-lxc
rootfs=$P/rootfs
pass=0
fail=0
ok() {
	echo "test $1 ... ok"
	pass=$((pass + 1))
}
bad() {
	echo "test $1 ... FAILED: $2"
	fail=$((fail + 1))
}

# The container's root: busybox and the static sipc, nothing else; /dev is
# Waydroid's tmpfs with bind-mounted nodes, /proc and /sys come from LXC.
mkdir -p "$rootfs/bin" "$rootfs/dev" "$rootfs/proc" "$rootfs/sys" "$rootfs/tmp" "$rootfs/data"
cp /bin/busybox "$rootfs/bin/busybox"
for c in sh sleep cat; do ln -sf busybox "$rootfs/bin/$c"; done
cp "$sipc_bin" "$rootfs/bin/sipc"

# Waydroid's config_nodes, as tools/helpers/lxc.py writes it (the nodes
# that exist here), plus the secure_ipc line of docs/waydroid.md.
cat >"$P/config_nodes" <<'NODES'
lxc.mount.entry = tmpfs dev tmpfs nosuid 0 0
lxc.mount.entry = /dev/zero dev/zero none bind,create=file,optional 0 0
lxc.mount.entry = /dev/null dev/null none bind,create=file,optional 0 0
lxc.mount.entry = /dev/full dev/full none bind,create=file,optional 0 0
lxc.mount.entry = /dev/secure_ipc dev/secure_ipc none bind,create=file,optional 0 0
NODES

# $1: container name. Waydroid's data/configs/config_base (LXCARCH and the
# paths filled in), then its config_3 (LXC 3 and later) without the seccomp
# profile and with an init of ours; no network (Waydroid: a veth on
# waydroid0).
container_config() {
	cat <<CONF
lxc.rootfs.path = dir:$rootfs
lxc.arch = x86_64
lxc.autodev = 0
lxc.cap.keep = audit_control sys_nice wake_alarm setpcap setgid setuid sys_ptrace sys_admin wake_alarm block_suspend sys_time net_admin net_raw net_bind_service kill dac_override dac_read_search fsetid mknod syslog chown sys_resource fowner ipc_lock sys_chroot
lxc.mount.auto = cgroup:ro sys:ro proc
lxc.console.path = none
lxc.include = $P/config_nodes
lxc.hook.post-stop = /dev/null
lxc.uts.name = $1
lxc.apparmor.profile = unconfined
lxc.no_new_privs = 1
lxc.init.cmd = /bin/sleep 1000000
lxc.pty.max = 10
lxc.net.0.type = empty
CONF
}
for c in c1 c2; do
	mkdir -p "$P/$c"
	container_config "$c" >"$P/$c/config"
done

start() {
	lxc-start -P "$P" -n "$1" -d -o "$P/$1.log" -l INFO || {
		tail -n 20 "$P/$1.log"
		return 1
	}
	lxc-wait -P "$P" -n "$1" -s RUNNING -t 30
}
init_pid() {
	lxc-info -P "$P" -n "$1" -p -H
}
# Runs a shell command line inside container $1 (its namespaces, its root).
inside() {
	c=$1
	shift
	lxc-attach -P "$P" -n "$c" --clear-env -- /bin/sh -c "$*"
}

# The peer's identity key (X25519, raw 32 bytes) and its public half.
openssl genpkey -algorithm X25519 -outform DER -out $P/id.der
tail -c 32 $P/id.der >"$rootfs/data/id.key"
pub=$(openssl pkey -inform DER -in $P/id.der -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')

head -c $((msgs * size)) /dev/urandom >$P/to_container
head -c $((msgs * size)) /dev/urandom >"$rootfs/data/to_host"

# $1: channel, $2: container, $3: pid-namespace argument. Streams both ways
# through a listener pinned to $3; sets st_host/st_ct and checks the data.
stream() {
	rm -f $P/from_container "$rootfs/data/from_host"
	"$sipc_bin" listen "$1" --uid 0 --pidns "$3" --identity-pub "$pub" --frame "raw:$size" \
		<$P/to_container >$P/from_container 2>$P/listen.err &
	lpid=$!
	# The channel exists once the listener runs: retry while "no such channel".
	i=0
	while :; do
		inside "$2" "/bin/sipc connect $1 --identity-file /data/id.key --frame raw:$size </data/to_host >/data/from_host 2>/data/connect.err" 2>$P/attach.err
		st_ct=$?
		[ "$st_ct" -eq 3 ] && [ $i -lt 50 ] || break
		i=$((i + 1))
		sleep 0.2
	done
	if [ "$st_ct" -ne 0 ]; then
		kill "$lpid" 2>/dev/null
	fi
	wait "$lpid"
	st_host=$?
}
streamed_ok() {
	[ "$st_ct" -eq 0 ] && [ "$st_host" -eq 0 ] &&
		cmp -s $P/to_container "$rootfs/data/from_host" &&
		cmp -s "$rootfs/data/to_host" $P/from_container
}
why() {
	echo "container exit $st_ct ($(cat "$rootfs/data/connect.err" $P/attach.err 2>/dev/null)), host exit $st_host ($(cat $P/listen.err)), received $(wc -c <$P/from_container 2>/dev/null)/$(wc -c <"$rootfs/data/from_host" 2>/dev/null) bytes of $((msgs * size))"
}

# 1. Both containers start from Waydroid's config, the node is there.
if start c1 && start c2 &&
	inside c1 "test -c /dev/secure_ipc && test -x /bin/sipc && test -f /data/to_host && ! test -e /usr"; then
	ok containers_start_with_the_node
else
	bad containers_start_with_the_node "lxc-start, or c1 lacks its root or /dev/secure_ipc"
	tail -n 20 "$P/c1.log"
	p1=$(init_pid c1)
	echo "c1 init $p1; its root:"
	ls -la "/proc/$p1/root/" "/proc/$p1/root/data"
	cat "/proc/$p1/mountinfo"
	inside c1 "ls -la / /data /dev; cat /proc/self/mountinfo" 2>&1
	grep -i "rootfs\|mount\|pivot" "$P/c1.log" | head -n 30
fi
pid1=$(init_pid c1)
pid2=$(init_pid c2)
if [ "$(readlink /proc/"$pid1"/ns/pid)" != "$(readlink /proc/self/ns/pid)" ] &&
	[ "$(readlink /proc/"$pid1"/ns/pid)" != "$(readlink /proc/"$pid2"/ns/pid)" ]; then
	ok containers_have_their_own_pid_namespaces
else
	bad containers_have_their_own_pid_namespaces "c1 $pid1, c2 $pid2"
fi

# 2. A process in c2 (same uid 0, same identity key) is refused by a
#    channel pinned to c1's pid namespace: exit 4, nothing delivered.
"$sipc_bin" listen refuse --uid 0 --pidns "$pid1" --identity-pub "$pub" --frame "raw:$size" \
	</dev/null >$P/refuse.out 2>$P/refuse.err &
rpid=$!
i=0
while :; do
	inside c2 "echo x | /bin/sipc connect refuse --identity-file /data/id.key 2>/data/refused.err" 2>$P/attach.err
	st=$?
	[ "$st" -eq 3 ] && [ $i -lt 50 ] || break
	i=$((i + 1))
	sleep 0.2
done
kill "$rpid" 2>/dev/null
wait "$rpid" 2>/dev/null
if [ "$st" -eq 4 ] && [ ! -s $P/refuse.out ]; then
	ok second_container_same_uid_is_refused
else
	bad second_container_same_uid_is_refused "sipc connect in c2 exited $st: $(cat "$rootfs/data/refused.err") $(cat $P/attach.err)"
fi

# 3. c1 streams 100 000 messages each way through the pinned channel.
t0=$(date +%s)
stream s1 c1 "$pid1"
t1=$(date +%s)
if streamed_ok; then
	ok container_streams_both_ways
	echo "lxc: $msgs x $size B each way in $((t1 - t0)) s"
else
	bad container_streams_both_ways "$(why)"
fi

# 4. c1 restarts: a new init, a new pid namespace. A pin of the old one (an
#    nsfs file held open by a bind mount) refuses the new container; the
#    host re-pins to the new init and streams again.
touch $P/old-pidns
mount --bind "/proc/$pid1/ns/pid" $P/old-pidns
lxc-stop -P "$P" -n c1 -t 10
if start c1; then
	new1=$(init_pid c1)
else
	new1=""
fi
if [ -n "$new1" ] && [ "$new1" != "$pid1" ] &&
	[ "$(readlink /proc/"$new1"/ns/pid)" != "$(readlink $P/old-pidns)" ]; then
	ok container_restarts_in_a_new_pid_namespace
else
	bad container_restarts_in_a_new_pid_namespace "old init $pid1, new '$new1'"
fi
stream s2 c1 $P/old-pidns
if [ "$st_ct" -eq 4 ]; then
	ok old_pin_refuses_the_restarted_container
else
	bad old_pin_refuses_the_restarted_container "$(why)"
fi
umount $P/old-pidns
stream s3 c1 "$new1"
if streamed_ok; then
	ok repinned_channel_streams_after_restart
else
	bad repinned_channel_streams_after_restart "$(why)"
fi

lxc-stop -P "$P" -n c1 -k 2>/dev/null
lxc-stop -P "$P" -n c2 -k 2>/dev/null
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
