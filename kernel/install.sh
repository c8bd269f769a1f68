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
#     kernel/install.sh --stage DIR          # only copy the DKMS source tree to DIR
#
# `cargo xtask install` runs this script with the same arguments.
set -eu

die() {
	echo "install.sh: $*" >&2
	exit 1
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
load=yes
action=install
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel)
		[ $# -ge 2 ] || die "--kernel needs a kernel version (e.g. $(uname -r))"
		kernel=$2
		shift 2
		;;
	--stage)
		[ $# -ge 2 ] || die "--stage needs a directory"
		stage=$2
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
		sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		die "unknown option '$1' (try --help)"
		;;
	esac
done

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

# 1. Sources into /usr/src/<name>-<version>, without build products.
if registered; then
	dkms remove -m "$name" -v "$version" --all
fi
rm -rf "$src"
copy_sources "$src"

# 2. DKMS: register, build and install for the chosen kernel. AUTOINSTALL in
#    dkms.conf rebuilds it for kernels installed later.
dkms add -m "$name" -v "$version"
dkms build -m "$name" -v "$version" -k "$kernel"
dkms install -m "$name" -v "$version" -k "$kernel"

# 3. The group, the node permissions and loading at boot.
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

# 4. Load it now (only meaningful for the running kernel).
if [ "$load" = yes ] && [ "$kernel" = "$(uname -r)" ]; then
	modprobe secure_ipc
	if command -v udevadm >/dev/null 2>&1; then
		udevadm trigger --action=add --sysname-match=secure_ipc || true
		udevadm settle || true
	fi
	ls -l /dev/secure_ipc
fi
echo "install.sh: $name $version installed for kernel $kernel;" \
	"add users to the channel group with: usermod -aG secure-ipc <user>"
