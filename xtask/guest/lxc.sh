#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Runs in the host-root guest of `cargo xtask test` (xtask/src/lxc.rs), as
# root, with the module loaded: real LXC containers (Debian's lxc) whose
# config is assembled the way Waydroid assembles its own (tools/helpers/
# lxc.py, set_lxc_config(): config_base, then the per-version snippets,
# config_nodes with the secure_ipc line, config_session with /data), started
# and stopped as Waydroid does, and the real `sipc` on both sides.
# Argument: a static sipc binary.
# Prints `test NAME ... ok|FAILED` per check and `N passed, N failed`.
set -u
sipc_bin=$1
msgs=100000
size=64
P=/tmp/sipc-lxc
rootfs=$P/rootfs
W=$P/waydroid
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

# The containers' root (shared by both, read-only use): busybox, the
# static sipc and an /init that stands in for Android's; the mount points
# Waydroid's config_nodes and config_session fill.
mkdir -p "$rootfs/bin" "$rootfs/dev" "$rootfs/proc" "$rootfs/sys" "$rootfs/tmp" \
	"$rootfs/var" "$rootfs/run" "$rootfs/data" "$rootfs/mnt_extra"
cp /bin/busybox "$rootfs/bin/busybox"
for c in sh sleep cat; do ln -sf busybox "$rootfs/bin/$c"; done
cp "$sipc_bin" "$rootfs/bin/sipc"
printf '#!/bin/sh\nexec /bin/sleep 1000000\n' >"$rootfs/init"
chmod 755 "$rootfs/init"

# Waydroid's data/configs files, settings as in waydroid/waydroid e7d73e7
# (comments dropped; LXCARCH, LXCPOSTSTOP and /var/lib/waydroid are
# placeholders Waydroid fills in, as below). config_1 (LXC 1 and 2) is not
# copied: this lxc is 5.0.
mkdir -p $W
cat >$W/config_base <<'EOF'
lxc.rootfs.path = /var/lib/waydroid/rootfs
lxc.arch = LXCARCH
lxc.autodev = 0
lxc.cap.keep = audit_control sys_nice wake_alarm setpcap setgid setuid sys_ptrace sys_admin wake_alarm block_suspend sys_time net_admin net_raw net_bind_service kill dac_override dac_read_search fsetid mknod syslog chown sys_resource fowner ipc_lock sys_chroot
lxc.mount.auto = cgroup:ro sys:ro proc
lxc.console.path = none
lxc.include = /var/lib/waydroid/lxc/waydroid/config_nodes
lxc.include = /var/lib/waydroid/lxc/waydroid/config_session
lxc.hook.post-stop = LXCPOSTSTOP
EOF
cat >$W/config_3 <<'EOF'
lxc.uts.name = waydroid
lxc.apparmor.profile = unconfined
lxc.seccomp.profile = /var/lib/waydroid/lxc/waydroid/waydroid.seccomp
lxc.no_new_privs = 1
lxc.init.cmd = /init
lxc.net.0.type = veth
lxc.net.0.flags = up
lxc.net.0.link = waydroid0
lxc.net.0.name = eth0
lxc.net.0.hwaddr = 00:16:3e:f9:d3:03
lxc.net.0.mtu = 1500
lxc.pty.max = 10
EOF
cat >$W/config_4 <<'EOF'
lxc.seccomp.allow_nesting = 1
EOF
cat >$W/waydroid.seccomp <<'EOF'
2
blacklist
init_module
finit_module
delete_module
_sysctl
kexec_file_load
kexec_load
reboot
open_by_handle_at errno 38
adjtimex errno 0
clock_adjtime errno 0
clock_adjtime64 errno 0
clock_settime errno 0
clock_settime64 errno 0
settimeofday errno 0
stime errno 0
add_key errno 0
keyctl errno 0
request_key errno 0
swapoff errno 0
swapon errno 0
EOF
# Waydroid's post-stop contract (data/scripts/waydroid-post-stop.sh):
# success on a stop, failure on a reboot so that LXC does not respawn.
printf '#!/bin/sh\n[ "$LXC_TARGET" = stop ]\n' >$W/post-stop.sh
chmod 755 $W/post-stop.sh

# Waydroid's generate_nodes_lxc_config(): an entry per host node that
# exists (check), some always; then the secure_ipc line of docs/waydroid.md.
nodes() {
	entry() { # src dst type options check
		[ "$5" = 0 ] || [ -e "$1" ] || return 0
		echo "lxc.mount.entry = $1 $2 $3 $4"
	}
	b="bind,create=file,optional 0 0"
	entry tmpfs dev tmpfs "nosuid 0 0" 0
	for n in zero null full ashmem fuse ion tty; do entry /dev/$n dev/$n none "$b" 1; done
	entry /dev/char dev/char none "bind,create=dir,optional 0 0" 1
	entry /dev/binder dev/binder none "$b" 0
	entry /dev/vndbinder dev/vndbinder none "$b" 0
	entry /dev/hwbinder dev/hwbinder none "$b" 0
	entry none dev/pts devpts "defaults,mode=644,ptmxmode=666,create=dir 0 0" 0
	entry /dev/uhid dev/uhid none "$b" 1
	entry /dev/net/tun dev/tun none "$b" 1
	entry /sys/kernel/debug sys/kernel/debug none "rbind,create=dir,optional 0 0" 1
	entry tmpfs mnt_extra tmpfs "nodev 0 0" 0
	for m in tmp var run; do entry tmpfs $m tmpfs "nodev 0 0" 0; done
	echo "lxc.mount.entry = /dev/secure_ipc dev/secure_ipc none bind,create=file,optional 0 0"
}

lxc_ver=$(lxc-info --version | cut -c1)
# $1: container name. set_lxc_config() for LXC path $P/lxc: config_base,
# then config_N for 3 <= N <= 4 that the LXC version reaches, the
# placeholders filled; generate_session_lxc_config(): the XDG runtime
# tmpfs and the user's data dir bound on /data (here $P/lxc/$1/data).
# This test's departures, each a sed line: its own paths, the container's
# name as uts name, and no veth (the guest has no waydroid0 bridge; the
# container still gets a network namespace of its own, with only lo).
waydroid_config() {
	d=$P/lxc/$1
	mkdir -p "$d/data"
	snippets=$W/config_base
	for v in 3 4; do
		[ "$lxc_ver" -ge $v ] && [ -e $W/config_$v ] && snippets="$snippets $W/config_$v"
	done
	# shellcheck disable=SC2086
	cat $snippets >"$d/config"
	sed -i -e "s/LXCARCH/$(uname -m)/" -e "s#LXCPOSTSTOP#$W/post-stop.sh#" \
		-e "s#/var/lib/waydroid/lxc/waydroid#$d#" -e "s#/var/lib/waydroid/rootfs#$rootfs#" \
		-e "s/^lxc.uts.name = waydroid/lxc.uts.name = $1/" \
		-e "/^lxc.net.0/d" "$d/config"
	echo "lxc.net.0.type = empty" >>"$d/config"
	cp $W/waydroid.seccomp "$d/"
	nodes >"$d/config_nodes"
	{
		echo "lxc.mount.entry = tmpfs run/xdg tmpfs create=dir 0 0"
		echo "lxc.mount.entry = $d/data data none rbind 0 0"
	} >"$d/config_session"
}
for c in c1 c2; do waydroid_config $c; done
echo "lxc: $(lxc-info --version), c1's config:"
sed 's/^/config: /' $P/lxc/c1/config

# tools/helpers/lxc.py start(): `lxc-start -P LXC -F -n NAME -- /init` in
# the background, then wait for RUNNING; stop(): `lxc-stop -k`.
start() {
	lxc-start -P $P/lxc -F -n "$1" -o "$P/$1.log" -l INFO -- /init </dev/null >"$P/$1.out" 2>&1 &
	eval "monitor_$1=$!"
	lxc-wait -P $P/lxc -n "$1" -s RUNNING -t 30 || {
		tail -n 20 "$P/$1.log" "$P/$1.out"
		return 1
	}
}
# Returns once lxc-start (the container's monitor) has exited.
stop() {
	lxc-stop -P $P/lxc -n "$1" -k
	eval "wait \$monitor_$1"
}
init_pid() {
	lxc-info -P $P/lxc -n "$1" -p -H
}
# Runs a shell command line inside container $1 (its namespaces, its root,
# its seccomp profile and capabilities) with lxc-attach; what lxc-attach
# and the command print goes to $P/attach.out. No std fd is the console:
# with one on a tty, lxc-attach runs the command on a pty of its own, and
# there the streaming `sipc connect` died of SIGHUP (exit 129) before it
# attached. A service started by Android's init has no terminal either.
inside() {
	c=$1
	shift
	lxc-attach -P $P/lxc -n "$c" --clear-env -- /bin/sh -c "$*" </dev/null >$P/attach.out 2>&1
}

# The peer's identity key (X25519, raw 32 bytes) in c1's and c2's /data,
# and its public half for the listener's --identity-pub.
openssl genpkey -algorithm X25519 -outform DER -out $P/id.der
for c in c1 c2; do tail -c 32 $P/id.der >"$P/lxc/$c/data/id.key"; done
pub=$(openssl pkey -inform DER -in $P/id.der -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n')

d1=$P/lxc/c1/data
head -c $((msgs * size)) /dev/urandom >$P/to_container
head -c $((msgs * size)) /dev/urandom >"$d1/to_host"

# $1: channel, $2: container, $3: pid-namespace argument, $4: down (host
# to container) or up. One direction through a listener pinned to $3: the
# sending side ends with --send-only (it exits once the peer took
# everything), the receiving side with --recv-only (it exits on the hang-up
# after the last message). Sets st_host/st_ct.
#
# Both ways on one channel (`sipc listen`/`connect` without the flags) does
# not end on the kernel backend: closing a Sender does not tell the peer
# (the module reports a hang-up only when the whole fd closes), so each
# side waits for the other's half forever (docs/verification.md).
one_way() {
	d=$P/lxc/$2/data
	if [ "$4" = down ]; then
		host_io="--send-only <$P/to_container >/dev/null"
		ct_io="--recv-only </dev/null >/data/from_host"
	else
		host_io="--recv-only </dev/null >$P/from_container"
		ct_io="--send-only </data/to_host >/dev/null"
	fi
	eval "\"\$sipc_bin\" listen \"\$1\" --uid 0 --pidns \"\$3\" --identity-pub \"\$pub\" --frame \"raw:\$size\" $host_io 2>$P/listen.err &"
	lpid=$!
	# A stall fails the check in bounded time, with where each sipc sleeps.
	(
		sleep 180
		echo "lxc: stream $1 stalled after 180 s; sipc processes:"
		for p in $(pgrep -x sipc); do
			echo "lxc: pid $p: $(tr '\0' ' ' </proc/$p/cmdline) wchan $(cat /proc/$p/wchan)"
			for t in /proc/$p/task/*; do
				echo "lxc:   task ${t##*/}: $(cat $t/wchan) $(head -c 300 $t/stack 2>/dev/null | tr '\n' '|')"
			done
		done
		echo "lxc: listen.err: $(cat $P/listen.err)"
		echo "lxc: connect.err: $(cat "$d/connect.err" 2>/dev/null)"
		pkill -x sipc
	) &
	dog=$!
	# The channel exists once the listener runs: retry while "no such channel".
	i=0
	while :; do
		inside "$2" "/bin/sipc connect $1 --identity-file /data/id.key --frame raw:$size $ct_io 2>/data/connect.err"
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
	kill "$dog" 2>/dev/null
	wait "$dog" 2>/dev/null
}
# $1: channel prefix, $2: container, $3: pid-namespace argument. Streams
# down on channel $1-down, then up on $1-up (not after a failure).
stream() {
	rm -f $P/from_container "$P/lxc/$2/data/from_host"
	one_way "$1-down" "$2" "$3" down
	if [ "$st_ct" -eq 0 ] && [ "$st_host" -eq 0 ]; then
		one_way "$1-up" "$2" "$3" up
	fi
}
streamed_ok() {
	[ "$st_ct" -eq 0 ] && [ "$st_host" -eq 0 ] &&
		cmp -s $P/to_container "$d1/from_host" &&
		cmp -s "$d1/to_host" $P/from_container
}
why() {
	echo "container exit $st_ct ($(cat "$d1/connect.err" $P/attach.out 2>/dev/null)), host exit $st_host ($(cat $P/listen.err)), received $(wc -c <$P/from_container 2>/dev/null)/$(wc -c <"$d1/from_host" 2>/dev/null) bytes of $((msgs * size))"
}

# 1. Both containers start from Waydroid's config; inside, the node is
#    there and the root is the container's (its /data, no host /usr).
in_root="test -c /dev/secure_ipc && test -x /bin/sipc && test -f /data/id.key && ! test -e /usr"
if start c1 && start c2 && inside c1 "$in_root && test -f /data/to_host" &&
	inside c2 "$in_root"; then
	ok containers_start_with_the_node
else
	bad containers_start_with_the_node "lxc-start, or c1/c2 lacks its root, /data or /dev/secure_ipc"
	tail -n 20 "$P/c1.log"
	inside c1 "ls -la / /data /dev"
	cat $P/attach.out
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
	inside c2 "echo x | /bin/sipc connect refuse --identity-file /data/id.key 2>/data/refused.err"
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
	bad second_container_same_uid_is_refused "sipc connect in c2 exited $st: $(cat "$P/lxc/c2/data/refused.err" $P/attach.out)"
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
stop c1
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

stop c1 2>/dev/null
stop c2 2>/dev/null
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
