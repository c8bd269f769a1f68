#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only OR MIT
#
# Install the secure_ipc kernel module on a real host with DKMS, plus the udev
# rule, the secure-ipc group (sysusers.d) and boot-time loading
# (modules-load.d). Run as root from a source checkout:
#
#     sudo kernel/install.sh                 # build + install for the running kernel
#     sudo kernel/install.sh --kernel 6.12.117+deb12-amd64
#     sudo kernel/install.sh --no-load       # do not modprobe now
#     sudo kernel/install.sh --uninstall
#     sudo kernel/install.sh --key K --cert C   # sign with this key, not DKMS's
#     kernel/install.sh --stage DIR          # only copy the DKMS source tree to DIR
#
# Exit status: 0 installed (and loaded); 1 failed, nothing changed;
# 2 usage error; 3 installed and signed, but the kernel does not trust the
# signing key yet: enroll it (printed steps), reboot into MokManager.
# `cargo xtask install` runs this script with the same arguments.
set -eu

# Set once the host starts to change: a failure from then on undoes it.
changing=no

die() {
	echo "install.sh: $*" >&2
	if [ "$changing" = yes ]; then
		rollback
	fi
	exit 1
}

usage() {
	echo "install.sh: $*" >&2
	exit 2
}

here=$(cd "$(dirname "$0")" && pwd)

conf_value() {
	sed -n "s/^$1=\"\\(.*\\)\"\$/\\1/p" "$here/dkms.conf"
}

name=$(conf_value PACKAGE_NAME)
version=$(conf_value PACKAGE_VERSION)
[ -n "$name" ] && [ -n "$version" ] || die "cannot read PACKAGE_NAME/PACKAGE_VERSION from $here/dkms.conf"

kernel=""
stage=""
key=""
cert=""
load=yes
action=install
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel)
		[ $# -ge 2 ] || usage "--kernel needs a kernel version (e.g. $(uname -r))"
		kernel=$2
		shift 2
		;;
	--stage)
		[ $# -ge 2 ] || usage "--stage needs a directory"
		stage=$2
		shift 2
		;;
	--key)
		[ $# -ge 2 ] || usage "--key needs the signing key (PEM private key)"
		key=$2
		shift 2
		;;
	--cert)
		[ $# -ge 2 ] || usage "--cert needs the key's certificate (PEM or DER)"
		cert=$2
		shift 2
		;;
	--no-load)
		load=no
		shift
		;;
	--uninstall)
		action=uninstall
		shift
		;;
	-h | --help)
		sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		usage "unknown option '$1' (try --help)"
		;;
	esac
done
if [ -n "$key" ] && [ -z "$cert" ] || [ -z "$key" ] && [ -n "$cert" ]; then
	usage "--key and --cert go together"
fi

# Copies the module sources (what DKMS builds from) to $1, without build
# products and without the host-side packaging files.
copy_sources() {
	[ -f "$here/Makefile" ] || [ -f "$here/Kbuild" ] ||
		die "$here has no Makefile/Kbuild: run this from a complete source checkout"
	mkdir -p "$1"
	(cd "$here" && tar -cf - \
		--exclude='*.o' --exclude='*.ko' --exclude='*.ko.*' --exclude='*.mod' \
		--exclude='*.mod.c' --exclude='.*.cmd' --exclude='*.symvers' \
		--exclude='modules.order' --exclude='.tmp_versions' --exclude='*.dwo' \
		--exclude='install.sh' --exclude='udev' --exclude='packaging' \
		--exclude='tests' --exclude='test' .) | (cd "$1" && tar -xf -)
}

if [ -n "$stage" ]; then
	rm -rf "$stage"
	copy_sources "$stage"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	die "must run as root: it installs into /usr/src, /lib/modules and /etc (try: sudo $0)"
fi
command -v dkms >/dev/null 2>&1 ||
	die "dkms is not installed (Debian/Ubuntu: apt-get install dkms; Fedora: dnf install dkms; Arch: pacman -S dkms)"

[ -n "$kernel" ] || kernel=$(uname -r)
src=/usr/src/$name-$version
udev_rule=/etc/udev/rules.d/70-secure-ipc.rules
sysusers=/usr/lib/sysusers.d/secure-ipc.conf
modules_load=/etc/modules-load.d/secure-ipc.conf

# True when DKMS already knows this exact name/version.
registered() {
	[ -n "$(dkms status -m "$name" -v "$version" 2>/dev/null)" ]
}

if [ "$action" = uninstall ]; then
	modprobe -r secure_ipc 2>/dev/null || true
	if registered; then
		dkms remove -m "$name" -v "$version" --all
	fi
	rm -rf "$src"
	rm -f "$udev_rule" "$modules_load" "$sysusers"
	command -v udevadm >/dev/null 2>&1 && udevadm control --reload || true
	echo "install.sh: removed $name $version (the secure-ipc group is kept)"
	exit 0
fi

[ -d "/lib/modules/$kernel/build" ] ||
	die "no build tree for kernel $kernel at /lib/modules/$kernel/build (Debian: apt-get install linux-headers-$kernel)"

# --- Secure Boot, lockdown, signature enforcement: what the kernel will
#     accept. Everything that can be checked before the host changes is.

# "enabled", "disabled" or "none" (no EFI, or EFI without the variable).
secure_boot() {
	if command -v mokutil >/dev/null 2>&1; then
		case "$(mokutil --sb-state 2>&1 || true)" in
		*"SecureBoot enabled"*) echo enabled ;;
		*"SecureBoot disabled"*) echo disabled ;;
		*) echo none ;;
		esac
		return
	fi
	# The variable's data follows its 4 attribute bytes.
	var=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
	if [ -r "$var" ]; then
		case "$(od -An -tu1 -j4 -N1 "$var" | tr -d ' ')" in
		1) echo enabled ;;
		*) echo disabled ;;
		esac
	else
		echo none
	fi
}

# The kernel's lockdown mode: none, integrity or confidentiality.
lockdown() {
	f=/sys/kernel/security/lockdown
	if [ -r "$f" ]; then
		sed -n 's/.*\[\(.*\)\].*/\1/p' "$f"
	else
		echo none
	fi
}

sb=$(secure_boot)
ld=$(lockdown)
enforce=$(cat /sys/module/module/parameters/sig_enforce 2>/dev/null || echo N)
need_sig=no
if [ "$sb" = enabled ] || [ "$ld" != none ] || [ "$enforce" = Y ] || [ -n "$key" ]; then
	need_sig=yes
fi
echo "install.sh: Secure Boot: $sb; lockdown: $ld; module.sig_enforce: $enforce;" \
	"signed module needed: $need_sig"
if [ "$sb" = enabled ] && ! command -v mokutil >/dev/null 2>&1; then
	die "Secure Boot is enabled and mokutil is missing: it checks and enrolls the signing key (Debian/Ubuntu: apt-get install mokutil; Fedora: dnf install mokutil)"
fi

tmp=$(mktemp -d /tmp/secure-ipc-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# A certificate serial or module sig_key as upper-case hex, no leading zeros.
serial() { tr -d ':\n' | tr a-f A-F | sed 's/^0*//'; }

# The certificate in DER, or failure.
to_der() {
	openssl x509 -in "$1" -outform DER -out "$2" 2>/dev/null ||
		openssl x509 -inform DER -in "$1" -outform DER -out "$2" 2>/dev/null
}

# The key DKMS signs with: the named one (passed to dkms in its environment,
# which its framework.conf does not override unless it sets the key itself),
# else DKMS's own, /var/lib/dkms/mok.key + mok.pub (generated by dkms build
# when absent), or what /etc/dkms/framework.conf names.
sign_env=""
if [ -n "$key" ]; then
	[ -r "$key" ] || die "cannot read the signing key $key"
	[ -r "$cert" ] || die "cannot read the certificate $cert"
	to_der "$cert" "$tmp/cert.der" || die "$cert is not an X.509 certificate (PEM or DER)"
	k_pub=$(openssl pkey -in "$key" -pubout 2>/dev/null) || die "$key is not a private key openssl can read"
	c_pub=$(openssl x509 -inform DER -in "$tmp/cert.der" -noout -pubkey)
	[ "$k_pub" = "$c_pub" ] || die "$key is not the private key of $cert"
	key=$(readlink -f "$key")
	cert=$(readlink -f "$cert")
	sign_env="mok_signing_key=$key mok_certificate=$cert"
fi

# --- From here the host changes; a failure puts it back as it was.
prev_kernels=""
if registered; then
	prev_kernels=$(dkms status -m "$name" -v "$version" |
		sed -n 's/^[^,]*, \([^,]*\), [^:]*: installed.*/\1/p')
	mkdir -p "$tmp/prev"
	cp -a "$src" "$tmp/prev/src"
fi
for f in "$udev_rule" "$modules_load" "$sysusers"; do
	if [ -e "$f" ]; then
		mkdir -p "$tmp/prev$(dirname "$f")"
		cp -a "$f" "$tmp/prev$f"
	fi
done
loaded=no

# Undoes steps 1-7: back to the previous install of this version, or none.
rollback() {
	changing=no
	echo "install.sh: undoing the partial install" >&2
	[ "$loaded" = no ] || modprobe -r secure_ipc 2>/dev/null || true
	if registered; then
		dkms remove -m "$name" -v "$version" --all >/dev/null 2>&1 || true
	fi
	rm -rf "$src"
	for f in "$udev_rule" "$modules_load" "$sysusers"; do
		rm -f "$f"
		[ ! -e "$tmp/prev$f" ] || cp -a "$tmp/prev$f" "$f"
	done
	if [ -d "$tmp/prev/src" ]; then
		cp -a "$tmp/prev/src" "$src"
		dkms add -m "$name" -v "$version" >/dev/null 2>&1 || true
		for k in $prev_kernels; do
			# shellcheck disable=SC2086
			env $sign_env dkms install -m "$name" -v "$version" -k "$k" >/dev/null 2>&1 ||
				echo "install.sh: could not reinstall the previous build for $k" >&2
		done
	fi
}
on_exit() {
	st=$?
	if [ "$changing" = yes ]; then
		echo "install.sh: a step failed (status $st)" >&2
		rollback
		st=1
	fi
	rm -rf "$tmp"
	exit "$st"
}
trap on_exit EXIT
changing=yes

# 1. Sources into /usr/src/<name>-<version>; DKMS registers and builds it
#    for the chosen kernel, signed as above. AUTOINSTALL in dkms.conf
#    rebuilds it for kernels installed later, signed with DKMS's own key.
if registered; then
	dkms remove -m "$name" -v "$version" --all
fi
rm -rf "$src"
copy_sources "$src"
# shellcheck disable=SC2086 # sign_env is empty or two words
env $sign_env dkms add -m "$name" -v "$version"
# shellcheck disable=SC2086
env $sign_env dkms build -m "$name" -v "$version" -k "$kernel" >"$tmp/dkms.log" 2>&1 || {
	cat "$tmp/dkms.log" >&2
	die "dkms build failed"
}
cat "$tmp/dkms.log"
built=$(find "/var/lib/dkms/$name/$version/$kernel" -name 'secure_ipc.ko*' | head -n 1)
[ -n "$built" ] || die "dkms build left no secure_ipc.ko under /var/lib/dkms/$name/$version/$kernel"
if [ -z "$key" ]; then
	key=$(sed -n 's/^Signing key: //p' "$tmp/dkms.log" | tail -n 1)
	cert=$(sed -n 's/^Public certificate (MOK): //p' "$tmp/dkms.log" | tail -n 1)
fi

# 2. Check the signature before installing: the module names the key.
signer=$(modinfo -F signer "$built" 2>/dev/null || true)
want=""
if [ -z "$signer" ]; then
	[ "$need_sig" = no ] ||
		die "dkms did not sign the module (no sign-file for $kernel?) and this kernel accepts only signed modules: $(grep -i sign "$tmp/dkms.log" || true)"
	echo "install.sh: the module is unsigned (this kernel does not require signatures)"
else
	[ -f "$tmp/cert.der" ] || to_der "$cert" "$tmp/cert.der" ||
		die "cannot read the signing certificate $cert"
	want=$(openssl x509 -inform DER -in "$tmp/cert.der" -noout -serial | sed 's/^serial=//' | serial)
	got=$(modinfo -F sig_key "$built" | serial)
	[ "$want" = "$got" ] ||
		die "the module's signature names key $got ($signer), not $cert (serial $want)"
	echo "install.sh: module signed by '$signer' ($cert)"
fi

# 3. Will the kernel trust it? With Secure Boot on, Linux trusts for modules
#    the keys built into it and the MOKs shim hands over (MokListRT, read
#    into the .machine keyring), not the firmware's db (.platform keyring).
enroll=no
if [ -n "$signer" ] && [ "$sb" = enabled ]; then
	# mokutil --test-key looks in db before the MOK list: "already in db"
	# says nothing about MokListRT, which --list-enrolled shows.
	fp=$(openssl x509 -inform DER -in "$tmp/cert.der" -noout -fingerprint -sha1 |
		sed 's/.*=//' | tr -d ':' | tr A-F a-f)
	fingerprints() { tr -d ':' | tr A-F a-f | grep -o '[0-9a-f]\{40\}'; }
	case "$(mokutil --test-key "$tmp/cert.der" 2>&1 || true)" in
	*"is already enrolled"*) enroll=no ;;
	*"already in the enrollment request"*) enroll=pending ;;
	*"is not enrolled"*) enroll=yes ;;
	*)
		if mokutil --list-enrolled 2>/dev/null | fingerprints | grep -qx "$fp"; then
			enroll=no
		else
			enroll=yes
		fi
		;;
	esac
	echo "install.sh: mokutil: the key is $(
		case $enroll in no) echo enrolled ;; pending) echo queued for enrollment ;; *) echo not enrolled ;; esac
	)"
fi

# 4. Into /lib/modules; the installed file is the checked one.
# shellcheck disable=SC2086
env $sign_env dkms install -m "$name" -v "$version" -k "$kernel"
if [ -n "$want" ]; then
	got=$(modinfo -k "$kernel" -F sig_key secure_ipc | serial)
	[ "$got" = "$want" ] || die "the installed module is not signed by $cert (sig_key $got)"
fi

# 5. The group, the node permissions and loading at boot.
install -D -m 0644 "$here/packaging/secure-ipc.sysusers.conf" "$sysusers"
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers secure-ipc.conf
elif ! getent group secure-ipc >/dev/null 2>&1; then
	groupadd --system secure-ipc
fi
install -D -m 0644 "$here/udev/70-secure-ipc.rules" "$udev_rule"
install -D -m 0644 "$here/packaging/secure-ipc.modules-load.conf" "$modules_load"
if command -v udevadm >/dev/null 2>&1; then
	# No udevd (containers, chroots): the rule applies from the next boot.
	udevadm control --reload ||
		echo "install.sh: udevd not reachable; the rule applies once udevd runs" >&2
fi

# 6. Key not enrolled: complete install, module loads at the next boot once
#    the key is enrolled. Exit status 3.
if [ "$enroll" != no ]; then
	changing=no
	echo "install.sh: $name $version installed for kernel $kernel, signed by '$signer';"
	echo "install.sh: Secure Boot is on and the kernel does not trust that key yet."
	if [ "$enroll" = yes ]; then
		echo "install.sh: to enroll it:"
		echo "    1. sudo mokutil --import $cert    (choose a one-time password)"
		echo "    2. reboot; MokManager starts before the kernel:"
		echo "       Enroll MOK -> Continue -> Yes -> the password -> Reboot"
	else
		echo "install.sh: the key is already queued for enrollment (mokutil --list-new):"
		echo "    reboot; in MokManager: Enroll MOK -> Continue -> Yes -> the password -> Reboot"
	fi
	echo "install.sh: after that the module loads at boot (modules-load.d);" \
		"check with: mokutil --test-key $cert; lsmod | grep secure_ipc"
	exit 3
fi

# 7. Load it now (only meaningful for the running kernel).
if [ "$load" = yes ] && [ "$kernel" = "$(uname -r)" ]; then
	if ! modprobe secure_ipc 2>"$tmp/modprobe.err"; then
		why=$(cat "$tmp/modprobe.err")
		case "$why" in
		*"Key was rejected"* | *"Required key not available"*)
			die "the kernel refused the module's signature ($why): it trusts neither '$signer' nor an unsigned module here (Secure Boot $sb, lockdown $ld)" ;;
		*) die "modprobe secure_ipc failed: $why" ;;
		esac
	fi
	loaded=yes
	if command -v udevadm >/dev/null 2>&1; then
		udevadm trigger --action=add --sysname-match=secure_ipc || true
		udevadm settle || true
	fi
	ls -l /dev/secure_ipc
fi
changing=no
echo "install.sh: $name $version installed for kernel $kernel;" \
	"add users to the channel group with: usermod -aG secure-ipc <user>"
