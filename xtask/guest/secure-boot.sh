#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Runs in the Secure Boot guest of `cargo xtask test` (xtask/src/secureboot.rs),
# as root in this machine's root (read-only 9p under a tmpfs overlay: what
# DKMS and install.sh write stays in the guest). Arguments: the harness's
# unsigned secure_ipc.ko, the directory of the test's keys.
# Prints `test NAME ... ok|FAILED` per check and `N passed, N failed`.
set -u
unsigned=$1
keys=$2
# "quick" (the step of `cargo xtask test`): checks 1-3 and 6 only, one DKMS
# build; the full run (`cargo xtask secure-boot-test`) adds 4 and 5.
mode=${3:-full}
t0=$(date +%s)
install=kernel/install.sh
kver=$(uname -r)
pass=0
fail=0

ok() {
	echo "test $1 ... ok"
	echo "time: $1 at $(($(date +%s) - t0))s"
	pass=$((pass + 1))
}
bad() {
	echo "test $1 ... FAILED: $2"
	echo "time: $1 at $(($(date +%s) - t0))s"
	fail=$((fail + 1))
}

# What systemd mounts on a real host: the EFI variables mokutil reads and
# securityfs with the lockdown file.
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
# udev's /dev/fd (dkms uses bash's <(...)); the guest's devtmpfs lacks it.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd

for n in enrolled platform; do
	openssl x509 -in "$keys/$n.pem" -outform DER -out "/tmp/$n.der"
done

# Everything install.sh may touch, for "nothing changed" checks: names and
# contents (the overlay changes directories' sizes and times when it copies
# them up). DKMS's own key (/var/lib/dkms/mok.*), which dkms generates on
# first use, is left out.
state() {
	{
		ls -A /usr/src
		dkms status 2>&1
		for d in /etc/udev/rules.d /etc/modules-load.d /usr/lib/sysusers.d; do
			echo "$d:"
			ls -A "$d" | while read -r f; do
				echo "$f $(cksum <"$d/$f")"
			done
		done
		find "/lib/modules/$kver/updates" 2>&1 | sort
		ls -A /var/lib/dkms | grep -v '^mok\.'
		grep -c secure_ipc /proc/modules
	} 2>&1
}
state >/tmp/state.before

# Runs install.sh with "$@"; sets st (exit status) and out (its output).
run_install() {
	"$install" "$@" >/tmp/install.out 2>&1
	st=$?
	out=$(cat /tmp/install.out)
}
show_out() {
	echo "--- install.sh output (status $st):"
	tail -n 25 /tmp/install.out
	echo "---"
}
same_state() {
	state >/tmp/state.now
	if cmp -s /tmp/state.before /tmp/state.now; then
		return 0
	fi
	diff /tmp/state.before /tmp/state.now
	return 1
}

# 1. The firmware booted with Secure Boot on, and the kernel locked down.
sb=$(mokutil --sb-state 2>&1)
lockdown=$(cat /sys/kernel/security/lockdown 2>&1)
case "$sb/$lockdown" in
*"SecureBoot enabled"*"[integrity]"* | *"SecureBoot enabled"*"[confidentiality]"*)
	ok secure_boot_on_and_kernel_locked_down ;;
*) bad secure_boot_on_and_kernel_locked_down "mokutil: $sb; lockdown: $lockdown" ;;
esac
# The MOK is trusted by the kernel (.machine keyring), the db key is not.
tk=$(mokutil --test-key /tmp/enrolled.der 2>&1)
machine=$(dmesg | grep "integrity: Loaded X.509 cert 'secure_ipc test key enrolled")
if echo "$tk" | grep -q "already enrolled" && [ -n "$machine" ]; then
	ok test_key_is_an_enrolled_mok
else
	bad test_key_is_an_enrolled_mok "mokutil: $tk; kernel: $machine"
fi

# 2. An unsigned build of the module is refused.
signer=$(modinfo -F signer "$unsigned" 2>&1)
err=$(insmod "$unsigned" 2>&1)
st=$?
if [ -z "$signer" ] && [ "$st" -ne 0 ] && ! grep -q '^secure_ipc ' /proc/modules &&
	echo "$err" | grep -q "Key was rejected by service"; then
	ok unsigned_module_is_refused
else
	bad unsigned_module_is_refused "signer '$signer', insmod status $st: $err"
	rmmod secure_ipc 2>/dev/null
fi

# 3. A key that is not its certificate's: refused before anything changes.
run_install --key "$keys/platform.key" --cert "$keys/enrolled.pem"
if [ "$st" -eq 1 ] && echo "$out" | grep -q "is not the private key" && same_state; then
	ok mismatched_key_changes_nothing
else
	bad mismatched_key_changes_nothing "status $st"
	show_out
fi

if [ "$mode" = full ]; then
# 4. DKMS's own key (/var/lib/dkms/mok.key), not enrolled: a complete
#    install, the module signed with that key, exit 3 with the enrollment
#    steps; the kernel refuses the module until then.
run_install
signer=$(modinfo -k "$kver" -F signer secure_ipc 2>&1)
mp=$(modprobe secure_ipc 2>&1)
mp_st=$?
if [ "$st" -eq 3 ] && echo "$out" | grep -q "mokutil --import /var/lib/dkms/mok.pub" &&
	[ "$signer" = "DKMS module signing key" ] && [ -e /etc/modules-load.d/secure-ipc.conf ] &&
	[ "$mp_st" -ne 0 ] && echo "$mp" | grep -q "Key was rejected by service"; then
	ok dkms_key_not_enrolled_exits_3_with_steps
else
	bad dkms_key_not_enrolled_exits_3_with_steps "status $st, signer '$signer', modprobe $mp_st: $mp"
	show_out
fi
run_install --uninstall
if [ "$st" -eq 0 ] && same_state; then
	ok uninstall_restores_the_host
else
	bad uninstall_restores_the_host "status $st"
	show_out
fi

# 5. A failure after DKMS installed the module (here modprobe, made to
#    fail by a modprobe.d "install" line): install.sh undoes all of it.
echo "install secure_ipc /bin/false" >/etc/modprobe.d/zz-sipc-test-fail.conf
run_install --key "$keys/enrolled.key" --cert "$keys/enrolled.pem"
rm -f /etc/modprobe.d/zz-sipc-test-fail.conf
if [ "$st" -eq 1 ] && echo "$out" | grep -q "modprobe secure_ipc failed" &&
	echo "$out" | grep -q "undoing the partial install" && same_state; then
	ok failed_load_leaves_the_host_as_it_was
else
	bad failed_load_leaves_the_host_as_it_was "status $st"
	show_out
fi

fi

# 6. The enrolled key: signed, checked, installed and loaded.
run_install --key "$keys/enrolled.key" --cert "$keys/enrolled.pem"
signer=$(modinfo -k "$kver" -F signer secure_ipc 2>&1)
if [ "$st" -eq 0 ] && grep -q '^secure_ipc ' /proc/modules && [ -c /dev/secure_ipc ] &&
	[ "$signer" = "secure_ipc test key enrolled" ]; then
	ok enrolled_key_signed_module_loads
else
	bad enrolled_key_signed_module_loads "status $st, signer '$signer'"
	show_out
fi
run_install --uninstall
if [ "$st" -eq 0 ] && same_state; then
	ok uninstall_after_load_restores_the_host
else
	bad uninstall_after_load_restores_the_host "status $st"
	show_out
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
