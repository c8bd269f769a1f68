//! `cargo xtask trinity`: Debian's trinity, an outside system-call fuzzer,
//! aimed at `/dev/secure_ipc` in a guest whose userland is this machine's
//! root (`vm-run --host-root`), run as an unprivileged user, bounded by an
//! operation count and a fixed, printed seed.
//!
//! Trinity knows nothing of this module's ioctl numbers: its ioctls on our
//! fds are random commands and argument pointers (ENOTTY, EFAULT, EINVAL),
//! its mmap/read/write/poll calls hit the real paths with hostile lengths,
//! offsets, flags and memory. The module's own ioctls are covered by the
//! guest race suites, which know the ABI.

use crate::util::{have, root, run, Steps};
use crate::vm::{self, Guest, Mode};
use std::fs;
use std::process::Command;
use std::time::Duration;

/// What one run does.
pub struct Plan {
    pub kernel: String,
    pub ops: u64,
    pub seed: u64,
    pub children: u32,
    /// The guest's console on this terminal (false: only in its log, as
    /// when it runs in a lane beside other guests).
    pub echo: bool,
}

/// The default plan of `cargo xtask test`: the KASAN kernel, a fixed seed.
pub const TEST_PLAN: (&str, u64, u64, u32) = ("6.12-kasan", 10_000, 0x5ec0_4e1c, 4);

/// The system calls trinity picks from: every one that reaches the
/// module's file operations (ioctl, mmap and the VMA it creates, read,
/// write, poll, release) plus what reshapes those mappings.
const SYSCALLS: &[&str] = &[
    "ioctl", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mlock", "munlock",
    "read", "write", "readv", "writev", "pread64", "pwrite64", "poll", "ppoll", "select", "fcntl",
    "dup", "close",
];

fn script(p: &Plan) -> String {
    let calls: String = SYSCALLS.iter().map(|c| format!(" -c {c}")).collect();
    format!(
        r#"set -u
# The attacker of the threat model: an unprivileged user who can open the
# device. Trinity's other fd sources (pipes, eventfds, memfds, ...) stay
# on: its children need some to start, and they widen what our fds are
# mixed with. Sockets are off: the socket setup of trinity 1.9 crashes on
# some seeds (0x5ec04e1c among them) before the first system call. Perf
# fds are off: enabling a perf event patches kernel text (static keys),
# and under TCG that patching can Oops with int3 in whatever code the
# other vCPU runs (seen in trace_rcu_utilization, with no module frame);
# a QEMU TCG problem, not one trinity can find in the module.
# Memory: trinity's write calls take their buffers from its own shared
# mappings (up to 64 MiB each), and the files it writes them to are its
# testfiles in the working directory and its memfds: both tmpfs pages.
# Unbounded, a run filled a 1 GiB guest in 140 s and the OOM killer's
# report failed it. The testfiles go to a tmpfs of 64 MiB (a full one is
# ENOSPC, another errno for trinity) and memfds are off: neither kind of
# fd reaches the module, they are only what our fds are mixed with.
chmod 0666 /dev/secure_ipc
mkdir -p /tmp/trinity-work
mount -t tmpfs -o size=64m,mode=1777 trinity-work /tmp/trinity-work
cd /tmp/trinity-work
echo "SIPC-TRINITY: seed {seed:#x}, {ops} operations, {children} children, victim /dev/secure_ipc"
timeout -s KILL {secs} setpriv --reuid=65534 --regid=65534 --clear-groups \
	trinity -q -l off --stats --disable-fds=sockets,perf,memfd -s {seed} -N {ops} -C {children} -V /dev/secure_ipc{calls} \
	>/tmp/trinity.out 2>&1
rc=$?
# No child may outlive the run: each would hold our fds past rmmod.
pkill -9 -x trinity
sleep 1
grep -E '^\[main\] (Ran|Bailing)' /tmp/trinity.out
sed -n '/^32bit:/,$p' /tmp/trinity.out | grep -v '^\['
[ "$rc" -eq 0 ] || tail -n 30 /tmp/trinity.out
echo "SIPC-TRINITY: trinity exit status $rc"
exit $rc
"#,
        seed = p.seed,
        ops = p.ops,
        children = p.children,
        secs = 300 + p.ops / 20,
    )
}

/// Runs trinity in a guest of `p.kernel`; Ok when it completed its
/// operations and the kernel logged nothing and the module unloaded.
pub fn run_plan(p: &Plan) -> Result<(), String> {
    crate::deps::ensure()?;
    if !have("trinity") {
        run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", "trinity"]))?;
    }
    // The script lives in the work tree: the guest sees this machine's
    // root, but its /tmp is a tmpfs of its own.
    let dir = root().join("target/trinity");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sh = dir.join("run.sh");
    fs::write(&sh, script(p)).map_err(|e| format!("{}: {e}", sh.display()))?;
    let k = vm::find_kernels(&p.kernel)?
        .into_iter()
        .next()
        .ok_or("no kernel")?;
    let guest = Guest {
        mode: Mode::Run(vec!["sh".into(), sh.display().to_string()]),
        bins: Vec::new(),
        extra: None,
        extra_modules: Vec::new(),
        optional_modules: Vec::new(),
        extra_files: Vec::new(),
        host_root: Some(dir.clone()),
    };
    let initrd = vm::pack(&k, &guest)?;
    let timeout = Duration::from_secs(600 + p.ops / 10) * k.slowdown;
    let o = vm::boot_with(&k, &initrd, "trinity", timeout, p.echo, true)?;
    let trouble = vm::kernel_trouble(&o.log);
    if !trouble.is_empty() {
        return Err(format!(
            "kernel trouble during trinity (seed {:#x}):\n{}\nthe reports:\n{}log: {}",
            p.seed,
            trouble.join("\n"),
            vm::reports(&o.log, 60),
            o.log_path.display()
        ));
    }
    let ran = o
        .log
        .iter()
        .find_map(|l| l.split_once("[main] Ran ").map(|(_, r)| r.to_string()));
    match (o.status, ran) {
        (Some(0), Some(ran)) => {
            println!(
                "trinity: seed {:#x}, {} children: ran {ran} ({:.0}s)",
                p.seed,
                p.children,
                o.elapsed.as_secs_f64()
            );
            Ok(())
        }
        (Some(vm::RC_RMMOD_FAILED), _) => Err(format!(
            "rmmod secure_ipc failed after trinity; log: {}",
            o.log_path.display()
        )),
        (status, ran) => Err(format!(
            "trinity did not complete (guest status {status:?}, {}); log: {}",
            ran.map_or("no \"Ran N syscalls\" line".into(), |r| format!("ran {r}")),
            o.log_path.display()
        )),
    }
}

/// `cargo xtask trinity [--kernel K] [--ops N] [--seed S] [--children C]`.
pub fn run_cli(args: &[String]) -> Result<(), String> {
    let (kernel, ops, seed, children) = TEST_PLAN;
    let mut p = Plan {
        kernel: kernel.into(),
        ops,
        seed,
        children,
        echo: true,
    };
    let mut it = args.iter();
    while let Some(x) = it.next() {
        let v = it.next().ok_or_else(|| format!("{x} needs a value"))?;
        let num = |v: &str| -> Result<u64, String> {
            let r = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            r.map_err(|_| format!("{x} {v}: not a number"))
        };
        match x.as_str() {
            "--kernel" => p.kernel = v.clone(),
            "--ops" => p.ops = num(v)?,
            "--seed" => p.seed = num(v)?,
            "--children" => p.children = num(v)?.clamp(1, 64) as u32,
            o => return Err(format!("unknown option `{o}`")),
        }
    }
    let mut steps = Steps::default();
    steps.step(&format!("trinity on {}", p.kernel), || run_plan(&p));
    steps.finish()
}
