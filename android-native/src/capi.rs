//! The C ABI declared in `include/secure_ipc_client.h`.
//!
//! Every function catches panics (a panic never unwinds into C) and reports
//! failures as negative errno values. The handle is a `Box<Endpoint>` turned
//! into a raw pointer by `sipc_create`/`sipc_attach` and back into a box,
//! exactly once, by `sipc_close`.

use crate::endpoint::{live_endpoints, BridgeError, Delivery, Endpoint, Wait};
use secure_ipc::{Backend, IdentityKey, Options, PeerPolicy, WaitPolicy};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::mem::{offset_of, size_of};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Our copy of the caller's `sipc_options`: its secrets are wiped when the
/// copy goes, on every path out of create/attach.
struct CallerOptions(SipcOptions);

impl Drop for CallerOptions {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.0.identity_secret.zeroize();
        self.0.psk.zeroize();
    }
}

/// `struct sipc_options`; layout fixed by the header.
#[repr(C)]
pub struct SipcOptions {
    size: u32,
    backend: u32,
    slots: u32,
    slot_size: u32,
    wait: u32,
    spins: u32,
    policy_flags: u32,
    peer_uid: u32,
    peer_gid: u32,
    secret_flags: u32,
    peer_pidns_fd: i32,
    reserved0: u32,
    peer_identity_pub: [u8; 32],
    identity_secret: [u8; 32],
    psk: [u8; 32],
    socket_dir: *const c_char,
    // ---- SIPC_OPTIONS_SIZE_VER1 ----
    rekey_records: u64,
    rekey_bytes: u64,
}

/// Size of the first published `struct sipc_options` (up to `socket_dir`):
/// the smallest a caller may pass.
pub const SIPC_OPTIONS_SIZE_VER0: usize = 152;
/// With `rekey_records` and `rekey_bytes`: this library's struct.
pub const SIPC_OPTIONS_SIZE_VER1: usize = 168;
/// Largest `size` read at all; beyond it, `E2BIG` without reading (the
/// cap the kernel puts on its extensible structs: one page).
const SIPC_OPTIONS_SIZE_MAX: usize = 4096;

/// `struct sipc_message`.
#[repr(C)]
pub struct SipcMessage {
    length: u32,
    msg_type: u16,
    reserved: u16,
    seq: u64,
    timestamp_ns: u64,
    pid: u32,
    uid: u32,
    gid: u32,
    reserved2: u32,
}

/// `struct sipc_stats`.
#[repr(C)]
pub struct SipcStats {
    sealed_msgs: u64,
    sealed_bytes: u64,
    opened_msgs: u64,
    opened_bytes: u64,
    auth_failures: u64,
    full_events: u64,
    rekeys: u64,
    tx_fill: u32,
    rx_fill: u32,
}

impl SipcStats {
    /// Key ratchets so far (for tests of the options' rekey fields).
    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }
}

/// `struct sipc_peer`.
#[repr(C)]
pub struct SipcPeer {
    pid: u32,
    uid: u32,
    gid: u32,
    identity_verified: u32,
    pidns_ino: u64,
    userns_ino: u64,
}

// The sizes and offsets the header's layout gives on LP64 targets; the C
// example asserts the same numbers with the C compiler's view.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<SipcOptions>() == SIPC_OPTIONS_SIZE_VER1);
    assert!(offset_of!(SipcOptions, rekey_records) == SIPC_OPTIONS_SIZE_VER0);
    assert!(offset_of!(SipcOptions, peer_pidns_fd) == 40);
    assert!(offset_of!(SipcOptions, peer_identity_pub) == 48);
    assert!(offset_of!(SipcOptions, socket_dir) == 144);
    assert!(size_of::<SipcMessage>() == 40);
    assert!(offset_of!(SipcMessage, seq) == 8);
    assert!(offset_of!(SipcMessage, pid) == 24);
    assert!(size_of::<SipcStats>() == 64);
    assert!(size_of::<SipcPeer>() == 32);
};

const SIPC_POLICY_UID: u32 = 1 << 0;
const SIPC_POLICY_GID: u32 = 1 << 1;
const SIPC_POLICY_PIDNS: u32 = 1 << 2;
const SIPC_POLICY_IDENTITY: u32 = 1 << 3;
const SIPC_OPT_IDENTITY_SECRET: u32 = 1 << 0;
const SIPC_OPT_PSK: u32 = 1 << 1;

/// Runs `f`, turning a panic into `-EIO` and an error into `-errno`.
fn guard(f: impl FnOnce() -> Result<c_int, BridgeError>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => -e.errno(),
        Err(_) => -libc::EIO,
    }
}

fn invalid(what: &str) -> BridgeError {
    BridgeError::InvalidArgument(what.to_string())
}

/// The caller's pid-namespace fd, duplicated: the caller keeps its own.
fn pidns_from_fd(fd: i32) -> Result<secure_ipc::PidNamespace, BridgeError> {
    use std::os::fd::BorrowedFd;
    if fd < 0 {
        return Err(invalid("peer_pidns_fd must be an open pid-namespace fd"));
    }
    // SAFETY: the caller promises `fd` is open for the duration of this call
    // (sipc_options documents it); it is only borrowed to duplicate it.
    let owned = unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .map_err(|_| invalid("peer_pidns_fd is not an open file descriptor"))?;
    secure_ipc::PidNamespace::from_fd(owned)
        .map_err(|_| invalid("peer_pidns_fd is not a pid namespace"))
}

/// Converts the caller's options (already read) into the client's.
fn options_from(
    o: &SipcOptions,
    socket_dir: Option<PathBuf>,
) -> Result<(Options, WaitPolicy), BridgeError> {
    let backend = match o.backend {
        0 => Backend::Auto,
        1 => Backend::Kernel,
        2 => Backend::Userspace,
        _ => return Err(invalid("backend")),
    };
    let wait = match o.wait {
        0 => WaitPolicy::SpinThenBlock { spins: o.spins },
        1 => WaitPolicy::BusyPoll,
        2 => WaitPolicy::Block,
        _ => return Err(invalid("wait")),
    };
    let known_policy = SIPC_POLICY_UID | SIPC_POLICY_GID | SIPC_POLICY_PIDNS | SIPC_POLICY_IDENTITY;
    if o.policy_flags & !known_policy != 0
        || o.secret_flags & !(SIPC_OPT_IDENTITY_SECRET | SIPC_OPT_PSK) != 0
    {
        return Err(invalid("unknown policy_flags or secret_flags bit"));
    }
    let has = |bit: u32| o.policy_flags & bit != 0;
    let policy = PeerPolicy {
        uid: has(SIPC_POLICY_UID).then_some(o.peer_uid),
        gid: has(SIPC_POLICY_GID).then_some(o.peer_gid),
        pidns: if has(SIPC_POLICY_PIDNS) {
            Some(pidns_from_fd(o.peer_pidns_fd)?)
        } else {
            None
        },
        identity_pub: has(SIPC_POLICY_IDENTITY).then_some(o.peer_identity_pub),
    };
    let mut opts = Options::new()
        .backend(backend)
        .slots(o.slots)
        .slot_size(o.slot_size)
        .wait(wait);
    // No policy bit: the backend's default (userspace: same uid only).
    if o.policy_flags != 0 {
        opts = opts.policy(policy);
    }
    if o.secret_flags & SIPC_OPT_IDENTITY_SECRET != 0 {
        opts = opts.identity(IdentityKey::from(o.identity_secret));
    }
    if o.secret_flags & SIPC_OPT_PSK != 0 {
        opts = opts.psk(o.psk);
    }
    if let Some(dir) = socket_dir {
        opts = opts.socket_dir(dir);
    }
    // 0 (what an older, smaller struct reads as): the library's default.
    if o.rekey_records != 0 {
        opts = opts.rekey_records(o.rekey_records);
    }
    if o.rekey_bytes != 0 {
        opts = opts.rekey_bytes(o.rekey_bytes);
    }
    Ok((opts, wait))
}

fn defaults() -> SipcOptions {
    SipcOptions {
        size: size_of::<SipcOptions>() as u32,
        backend: 0,
        slots: 256,
        slot_size: 4096,
        wait: 0,
        spins: 2000,
        policy_flags: 0,
        peer_uid: 0,
        peer_gid: 0,
        secret_flags: 0,
        peer_pidns_fd: -1,
        reserved0: 0,
        peer_identity_pub: [0; 32],
        identity_secret: [0; 32],
        psk: [0; 32],
        socket_dir: std::ptr::null(),
        rekey_records: 0,
        rekey_bytes: 0,
    }
}

/// `E2BIG` as the channel error the bridge reports.
fn too_big() -> BridgeError {
    BridgeError::Channel(secure_ipc::Error::Io(std::io::Error::from_raw_os_error(
        libc::E2BIG,
    )))
}

/// Reads the caller's `struct sipc_options` of `opts->size` bytes the way
/// the kernel's `copy_struct_from_user()` reads an extensible ioctl struct:
/// smaller than [`SIPC_OPTIONS_SIZE_VER0`] is `EINVAL`; an older, smaller
/// struct is read as far as it goes and the fields past it are zero (each
/// field's zero is the behaviour of the version without it); a newer,
/// larger one is accepted if every byte past this library's struct is
/// zero (fields it does not know, unused), else `E2BIG`, as is a size over
/// one page.
///
/// # Safety
/// `opts` is non-NULL and points to `opts->size` readable bytes.
unsafe fn read_options(opts: *const SipcOptions) -> Result<SipcOptions, BridgeError> {
    // SAFETY: non-NULL; the caller's struct starts with its u32 size.
    let size = unsafe { opts.cast::<u32>().read_unaligned() } as usize;
    if size < SIPC_OPTIONS_SIZE_VER0 {
        return Err(invalid(
            "sipc_options.size is smaller than the first version of the struct \
             (initialise it with sipc_options_init)",
        ));
    }
    if size > SIPC_OPTIONS_SIZE_MAX {
        return Err(too_big());
    }
    let ours = size_of::<SipcOptions>();
    if size > ours {
        // SAFETY: the caller's struct is `size` readable bytes.
        let tail = unsafe { std::slice::from_raw_parts(opts.cast::<u8>().add(ours), size - ours) };
        if tail.iter().any(|&b| b != 0) {
            return Err(too_big());
        }
    }
    let mut o = std::mem::MaybeUninit::<SipcOptions>::zeroed();
    // SAFETY: min(size, ours) bytes are readable at `opts` (caller
    // contract) and writable in `o`, which is a distinct local; all-zero
    // bytes are a valid SipcOptions (integers, arrays, a NULL pointer), so
    // `o` is initialised whatever prefix the copy overwrote.
    let o = unsafe {
        std::ptr::copy_nonoverlapping(
            opts.cast::<u8>(),
            o.as_mut_ptr().cast::<u8>(),
            size.min(ours),
        );
        o.assume_init()
    };
    Ok(o)
}

/// Reads the name and options of create/attach and opens the endpoint.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `opts` is NULL or points to
/// `opts->size` readable bytes; `out` is NULL or writable.
unsafe fn open(
    create: bool,
    name: *const c_char,
    opts: *const SipcOptions,
    out: *mut *mut Endpoint,
) -> c_int {
    guard(|| {
        if name.is_null() || out.is_null() {
            return Err(invalid("NULL name or out pointer"));
        }
        // SAFETY: checked non-NULL; the caller passes a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(name) }
            .to_str()
            .map_err(|_| BridgeError::Channel(secure_ipc::Error::InvalidName))?;
        let o = CallerOptions(if opts.is_null() {
            defaults()
        } else {
            // SAFETY: non-NULL, `opts->size` readable bytes (caller contract).
            unsafe { read_options(opts) }?
        });
        let o = &o.0;
        let socket_dir = if o.socket_dir.is_null() {
            None
        } else {
            // SAFETY: non-NULL; the caller passes a NUL-terminated path.
            let dir = unsafe { CStr::from_ptr(o.socket_dir) };
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
        };
        let (opts, wait) = options_from(o, socket_dir)?;
        let ep = if create {
            Endpoint::create(name, &opts, wait)?
        } else {
            Endpoint::attach(name, &opts, wait)?
        };
        // SAFETY: `out` is non-NULL and writable (caller contract).
        unsafe { out.write(Box::into_raw(Box::new(ep))) };
        Ok(0)
    })
}

/// Borrows the endpoint behind a handle.
///
/// # Safety
/// `ch` is NULL or a live handle from sipc_create/sipc_attach.
unsafe fn endpoint<'a>(ch: *const Endpoint) -> Result<&'a Endpoint, BridgeError> {
    // SAFETY: caller contract: NULL or a live Box<Endpoint> pointer.
    unsafe { ch.as_ref() }.ok_or_else(|| invalid("NULL channel"))
}

/// `sipc_options_init_sized`: the defaults for a caller's struct of `size`
/// bytes (its `sizeof`), never writing past it.
///
/// # Safety
/// `opts` is NULL or points to `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn sipc_options_init_sized(opts: *mut SipcOptions, size: usize) -> c_int {
    if opts.is_null() || size < SIPC_OPTIONS_SIZE_VER0 {
        return -libc::EINVAL;
    }
    if size > SIPC_OPTIONS_SIZE_MAX {
        return -libc::E2BIG;
    }
    let mut d = defaults();
    d.size = size as u32;
    let ours = size_of::<SipcOptions>();
    // SAFETY: `opts` has `size` writable bytes (caller contract); `d` is a
    // distinct local of `ours` bytes. A newer caller's fields past ours are
    // zeroed: unknown to this library, so unused, which is what zero means.
    unsafe {
        let dst = opts.cast::<u8>();
        std::ptr::copy_nonoverlapping((&raw const d).cast::<u8>(), dst, size.min(ours));
        if size > ours {
            std::ptr::write_bytes(dst.add(ours), 0, size - ours);
        }
    }
    0
}

/// `sipc_options_init`, the symbol binaries built against the first header
/// call (which had no `_sized` form): it writes the first version's
/// [`SIPC_OPTIONS_SIZE_VER0`] bytes, all such a struct holds. The current
/// header maps `sipc_options_init(o)` to `sipc_options_init_sized(o,
/// sizeof(*o))` instead.
///
/// # Safety
/// `opts` is NULL or points to [`SIPC_OPTIONS_SIZE_VER0`] writable bytes.
#[no_mangle]
pub unsafe extern "C" fn sipc_options_init(opts: *mut SipcOptions) {
    // SAFETY: forwarded caller contract, for VER0 bytes.
    let _ = unsafe { sipc_options_init_sized(opts, SIPC_OPTIONS_SIZE_VER0) };
}

/// `sipc_create`.
///
/// # Safety
/// See the header: `name` NUL-terminated, `opts` NULL or initialised, `out` writable.
#[no_mangle]
pub unsafe extern "C" fn sipc_create(
    name: *const c_char,
    opts: *const SipcOptions,
    out: *mut *mut Endpoint,
) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { open(true, name, opts, out) }
}

/// `sipc_attach`.
///
/// # Safety
/// As `sipc_create`.
#[no_mangle]
pub unsafe extern "C" fn sipc_attach(
    name: *const c_char,
    opts: *const SipcOptions,
    out: *mut *mut Endpoint,
) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { open(false, name, opts, out) }
}

/// `sipc_send`.
///
/// # Safety
/// `ch` is a live handle; `buf` points to `len` readable bytes (or len is 0).
#[no_mangle]
pub unsafe extern "C" fn sipc_send(
    ch: *const Endpoint,
    msg_type: u16,
    buf: *const c_void,
    len: usize,
    timeout_ms: c_int,
) -> c_int {
    guard(|| {
        // SAFETY: caller contract.
        let ep = unsafe { endpoint(ch) }?;
        let payload: &[u8] = if len == 0 {
            &[]
        } else if buf.is_null() {
            return Err(invalid("NULL buffer"));
        } else {
            // SAFETY: non-NULL, `len` readable bytes (caller contract).
            unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
        };
        let wait = Wait::from_millis(timeout_ms.into());
        match ep.send(msg_type, payload, wait)? {
            true => Ok(0),
            false if wait == Wait::Never => Ok(-libc::EAGAIN),
            false => Ok(-libc::ETIMEDOUT),
        }
    })
}

/// `sipc_try_send`.
///
/// # Safety
/// As `sipc_send`.
#[no_mangle]
pub unsafe extern "C" fn sipc_try_send(
    ch: *const Endpoint,
    msg_type: u16,
    buf: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: forwarded caller contract.
    unsafe { sipc_send(ch, msg_type, buf, len, 0) }
}

/// `sipc_recv`.
///
/// # Safety
/// `ch` is a live handle; `buf` points to `cap` writable bytes (or cap is 0);
/// `msg` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sipc_recv(
    ch: *const Endpoint,
    buf: *mut c_void,
    cap: usize,
    msg: *mut SipcMessage,
    timeout_ms: c_int,
) -> c_int {
    guard(|| {
        // SAFETY: caller contract.
        let ep = unsafe { endpoint(ch) }?;
        if buf.is_null() && cap != 0 {
            return Err(invalid("NULL buffer with non-zero capacity"));
        }
        let wait = Wait::from_millis(timeout_ms.into());
        let write_info = |info: &crate::endpoint::MessageInfo| {
            if !msg.is_null() {
                let m = SipcMessage {
                    length: info.len as u32,
                    msg_type: info.msg_type,
                    reserved: 0,
                    seq: info.seq,
                    timestamp_ns: info.timestamp_ns,
                    pid: info.pid,
                    uid: info.uid,
                    gid: info.gid,
                    reserved2: 0,
                };
                // SAFETY: non-NULL and writable (caller contract).
                unsafe { msg.write_unaligned(m) };
            }
        };
        let got = ep.receive(wait, |info, payload| {
            write_info(info);
            if payload.len() > cap {
                return Delivery::TooSmall { room: cap };
            }
            if !payload.is_empty() {
                // SAFETY: `buf` has `cap` >= payload.len() writable bytes
                // (caller contract) and cannot overlap the library's ring.
                unsafe {
                    std::ptr::copy_nonoverlapping(payload.as_ptr(), buf.cast::<u8>(), payload.len())
                };
            }
            Delivery::Taken(payload.len())
        })?;
        match got {
            Some(n) => Ok(c_int::try_from(n).unwrap_or(c_int::MAX)),
            None if wait == Wait::Never => Ok(-libc::EAGAIN),
            None => Ok(-libc::ETIMEDOUT),
        }
    })
}

/// `sipc_recv_fd`.
///
/// # Safety
/// `ch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sipc_recv_fd(ch: *const Endpoint) -> c_int {
    // SAFETY: caller contract.
    guard(|| Ok(unsafe { endpoint(ch) }?.rx_fd()))
}

/// `sipc_send_fd`.
///
/// # Safety
/// `ch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sipc_send_fd(ch: *const Endpoint) -> c_int {
    // SAFETY: caller contract.
    guard(|| Ok(unsafe { endpoint(ch) }?.tx_fd()))
}

/// `sipc_arm_recv`: 1 = sleep on the fd, 0 = receive now.
///
/// # Safety
/// `ch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sipc_arm_recv(ch: *const Endpoint) -> c_int {
    // SAFETY: caller contract.
    guard(|| Ok(c_int::from(unsafe { endpoint(ch) }?.arm_recv()?)))
}

/// `sipc_arm_send`: 1 = sleep on the fd, 0 = send now.
///
/// # Safety
/// `ch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sipc_arm_send(ch: *const Endpoint) -> c_int {
    // SAFETY: caller contract.
    guard(|| Ok(c_int::from(unsafe { endpoint(ch) }?.arm_send()?)))
}

/// `sipc_shutdown`.
///
/// # Safety
/// `ch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sipc_shutdown(ch: *const Endpoint) -> c_int {
    guard(|| {
        // SAFETY: caller contract.
        unsafe { endpoint(ch) }?.shutdown();
        Ok(0)
    })
}

/// `sipc_max_message_size`.
///
/// # Safety
/// `ch` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sipc_max_message_size(ch: *const Endpoint) -> usize {
    // SAFETY: caller contract.
    unsafe { endpoint(ch) }.map_or(0, |ep| ep.max_message_size())
}

/// `sipc_stats`.
///
/// # Safety
/// `ch` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn sipc_stats(ch: *const Endpoint, out: *mut SipcStats) -> c_int {
    guard(|| {
        // SAFETY: caller contract.
        let ep = unsafe { endpoint(ch) }?;
        if out.is_null() {
            return Err(invalid("NULL stats pointer"));
        }
        let s = ep.stats()?;
        let c = SipcStats {
            sealed_msgs: s.sealed_msgs,
            sealed_bytes: s.sealed_bytes,
            opened_msgs: s.opened_msgs,
            opened_bytes: s.opened_bytes,
            auth_failures: s.auth_failures,
            full_events: s.full_events,
            rekeys: s.rekeys,
            tx_fill: s.tx_fill,
            rx_fill: s.rx_fill,
        };
        // SAFETY: non-NULL and writable (caller contract).
        unsafe { out.write_unaligned(c) };
        Ok(0)
    })
}

/// `sipc_peer_credentials`.
///
/// # Safety
/// `ch` is a live handle; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn sipc_peer_credentials(ch: *const Endpoint, out: *mut SipcPeer) -> c_int {
    guard(|| {
        // SAFETY: caller contract.
        let ep = unsafe { endpoint(ch) }?;
        if out.is_null() {
            return Err(invalid("NULL peer pointer"));
        }
        let p = ep.peer_credentials()?;
        let c = SipcPeer {
            pid: p.cred.pid,
            uid: p.cred.uid,
            gid: p.cred.gid,
            identity_verified: u32::from(p.identity_verified),
            pidns_ino: p.pidns_ino,
            userns_ino: p.userns_ino,
        };
        // SAFETY: non-NULL and writable (caller contract).
        unsafe { out.write_unaligned(c) };
        Ok(0)
    })
}

/// `sipc_close`.
///
/// # Safety
/// `ch` is NULL or a live handle not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn sipc_close(ch: *mut Endpoint) {
    if ch.is_null() {
        return;
    }
    // SAFETY: a live handle from Box::into_raw in open(), given back once.
    let ep = unsafe { Box::from_raw(ch) };
    // Dropping may run arbitrary channel teardown: never unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(move || {
        ep.close();
        drop(ep);
    }));
}

/// `sipc_identity_public_key`.
///
/// # Safety
/// `secret` is NULL or 32 readable bytes; `public_key` is NULL or 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn sipc_identity_public_key(secret: *const u8, public_key: *mut u8) -> c_int {
    guard(|| {
        if secret.is_null() || public_key.is_null() {
            return Err(invalid("NULL key pointer"));
        }
        let mut raw = zeroize::Zeroizing::new([0u8; 32]);
        // SAFETY: 32 readable bytes (caller contract); `raw` is a distinct local.
        unsafe { std::ptr::copy_nonoverlapping(secret, raw.as_mut_ptr(), 32) };
        let public = IdentityKey::from(*raw).public_key();
        // SAFETY: 32 writable bytes (caller contract), not overlapping `public`.
        unsafe { std::ptr::copy_nonoverlapping(public.as_ptr(), public_key, 32) };
        Ok(0)
    })
}

/// `sipc_strerror`.
#[no_mangle]
pub extern "C" fn sipc_strerror(err: c_int) -> *const c_char {
    let s: &'static CStr = match err.unsigned_abs() as i32 {
        0 => c"success",
        libc::EPIPE => c"the peer closed the channel",
        libc::EMSGSIZE => c"message larger than the channel's maximum, or receive buffer too small",
        libc::EAGAIN => c"would wait: the channel is full or empty",
        libc::ETIMEDOUT => c"timed out",
        libc::EBADMSG => c"a record failed authentication and was dropped",
        libc::EACCES => c"the channel's peer policy refused this process",
        libc::ENOENT => c"no such channel (is the owner running?)",
        libc::EEXIST => c"a channel with this name already exists",
        libc::EBUSY => c"the channel already has a peer attached",
        libc::ENODEV => {
            c"/dev/secure_ipc is not available (load secure_ipc.ko or use the userspace backend)"
        }
        libc::EINVAL => c"invalid argument (channel name, geometry or options)",
        libc::E2BIG => {
            c"sipc_options is larger than 4096 bytes or has non-zero fields this library does not know"
        }
        libc::EPERM => c"the owner is not the uid or identity this attacher requires",
        libc::EKEYREJECTED => c"identity proof or pre-shared key rejected",
        libc::ENOTCONN => c"no peer has attached yet",
        libc::EPROTO => c"protocol error",
        libc::EBADF => c"the channel handle is closed",
        libc::ESHUTDOWN => c"the channel was shut down (sipc_shutdown)",
        libc::EIO => c"I/O error (or an internal error)",
        _ => c"operating-system error (see errno)",
    };
    s.as_ptr()
}

/// `sipc_debug_live_handles`.
#[no_mangle]
pub extern "C" fn sipc_debug_live_handles() -> usize {
    live_endpoints()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_of_the_callers_options_is_wiped_when_it_goes() {
        let mut o = defaults();
        o.identity_secret = [0x5c; 32];
        o.psk = [0xc5; 32];
        let mut slot = std::mem::MaybeUninit::new(CallerOptions(o));
        // SAFETY: the slot holds a live CallerOptions, dropped once.
        unsafe { slot.assume_init_drop() };
        // SAFETY: reads the plain-data fields of the dropped copy, which
        // stay initialised (drop only overwrote them); volatile, so the
        // compiler cannot assume their old value.
        let (id, psk) = unsafe {
            let p = slot.as_ptr().cast::<SipcOptions>();
            (
                std::ptr::read_volatile(std::ptr::addr_of!((*p).identity_secret)),
                std::ptr::read_volatile(std::ptr::addr_of!((*p).psk)),
            )
        };
        assert_eq!((id, psk), ([0; 32], [0; 32]));
    }
}
