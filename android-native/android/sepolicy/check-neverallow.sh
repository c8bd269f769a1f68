#!/bin/bash
# Compile this directory's policy together with a platform policy checkout
# (AOSP/LineageOS system/sepolicy) into one monolithic policy.conf, in the
# file order of that tree's build/soong/policy.go (policyConfOrder) and with
# the m4 flags of a user, full-Treble build, and run checkpolicy on it.
# checkpolicy checks every neverallow of the platform policy against the
# rules of this directory; it exits non-zero on a violation.
#
#   check-neverallow.sh SYSTEM_SEPOLICY_DIR [EXTRA_POLICY_DIR...]
#
# e.g. with the app rule: check-neverallow.sh ~/lineage-20/system/sepolicy app
# (EXTRA dirs are relative to this directory). It does not run Soong's other
# checks (split-policy CIL build, treble_sepolicy_tests, sepolicy_tests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$1
shift
dirs=("$root/public" "$root/private" "$root/vendor" "$here")
for d in "$@"; do dirs+=("$here/$d"); done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
order="security_classes initial_sids access_vectors global_macros
neverallow_macros mls_macros mls_decl mls policy_capabilities te_macros
attributes ioctl_defines ioctl_macros *.te roles_decl roles users
initial_sid_contexts fs_use genfs_contexts port_contexts"
files=()
for o in $order; do
	for d in "${dirs[@]}"; do
		for f in "$d"/$o; do
			if [ -f "$f" ]; then files+=("$f"); fi
		done
	done
done
m4 --fatal-warnings -s \
	-D mls_num_sens=1 -D mls_num_cats=1024 \
	-D target_build_variant=user -D target_arch=x86_64 \
	-D target_with_dexpreopt=false -D target_with_asan=false \
	-D target_with_native_coverage=false -D target_full_treble=true \
	-D target_compatible_property=true \
	-D target_treble_sysprop_neverallow=true \
	-D target_enforce_sysprop_owner=true -D target_exclude_build_test=false \
	-D target_requires_insecure_execmem_for_swiftshader=false \
	-D target_enforce_debugfs_restriction=true -D target_recovery=false \
	-D target_flatten_apex=false \
	"${files[@]}" >"$out/policy.conf"
checkpolicy -M -c 30 -o "$out/policy" "$out/policy.conf"
echo "check-neverallow: no neverallow violated (${#files[@]} files)"
