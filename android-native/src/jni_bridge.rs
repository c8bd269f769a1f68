//! JNI entry points of `dev.secureipc.NativeBridge` (java/dev/secureipc/).
//!
//! Binding: name-mangled exports (`#[jni_mangle]`), not `RegisterNatives`.
//! All natives are static methods of one package-private class, so the
//! mangled names are short and stable; `jni_mangle` derives them from the
//! Rust function names, so the two cannot drift apart; and there is no
//! `JNI_OnLoad` with a hand-written method table (names, signatures and
//! function-pointer casts that nothing checks at compile time). The cost, a
//! symbol lookup on each method's first call, is paid once. R8/ProGuard
//! keeps the class name (android/proguard-rules.pro).
//!
//! Every entry point runs inside [`EnvUnowned::with_env`], which catches
//! panics, and resolves its outcome with [`ThrowJava`], which turns every
//! error into the matching Java exception: no panic and no Rust error ever
//! crosses into the JVM.
//!
//! Handles: a Java `long` is a key into a registry of `Arc<Endpoint>`, never
//! a pointer. Keys are never reused, so a stale or forged handle finds
//! nothing (IllegalStateException) instead of freed memory; `close` removes
//! the key (a second close finds nothing and does nothing) and the endpoint
//! is freed, exactly once, when the last call still using it returns.
//!
//! Every native taking a handle also takes `owner`, the Java `SecureIpc`
//! of that handle, unused here: as a native's argument it stays reachable
//! until the native returns, so its cleaner cannot close the handle under
//! a running call (NativeBridge.java says why this and not
//! `Reference.reachabilityFence`).

use crate::endpoint::{live_endpoints, BridgeError, Delivery, Endpoint, MessageInfo, Wait};
use jni::errors::ErrorPolicy;
use jni::objects::{
    JByteArray, JByteBuffer, JClass, JLongArray, JObject, JString, JThrowable, JValue,
};
use jni::strings::{JNIStr, JNIString};
use jni::sys::{jboolean, jint, jlong};
use jni::{jni_mangle, jni_sig, jni_str, Env, EnvUnowned};
use secure_ipc::{Backend, Error, IdentityKey, Options, PeerPolicy, WaitPolicy};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use zeroize::Zeroizing;

/// Length of the `long[] meta` array `receive`/`receiveDirect` fill:
/// length, type, sequence, timestamp, pid, uid, gid (NativeBridge.META_*).
const META_LEN: usize = 7;

static HANDLES: RwLock<BTreeMap<jlong, Arc<Endpoint>>> = RwLock::new(BTreeMap::new());

thread_local! {
    /// Per-thread staging buffer of `send(byte[])` (taken while in use).
    static SEND_STAGING: std::cell::Cell<Vec<i8>> = const { std::cell::Cell::new(Vec::new()) };
}
static NEXT_HANDLE: AtomicI64 = AtomicI64::new(1);

/// Runs `f` on this thread's staging buffer resized to `len`, then wipes
/// the plaintext it held before putting it back (the buffer outlives the
/// call; its contents must not).
fn with_send_staging<R>(len: usize, f: impl FnOnce(&mut [i8]) -> R) -> R {
    SEND_STAGING.with(|staging| {
        let mut buf = staging.take();
        buf.clear();
        buf.resize(len, 0);
        let r = f(&mut buf);
        zeroize::Zeroize::zeroize(buf.as_mut_slice());
        staging.set(buf);
        r
    })
}

/// A failed native call: a bridge/channel error or a JNI error.
#[derive(Debug)]
enum Failure {
    Bridge(BridgeError),
    Jni(jni::errors::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Bridge(e) => write!(f, "{e}"),
            Failure::Jni(e) => write!(f, "JNI error: {e}"),
        }
    }
}

impl std::error::Error for Failure {}

impl From<jni::errors::Error> for Failure {
    fn from(e: jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

impl From<BridgeError> for Failure {
    fn from(e: BridgeError) -> Self {
        Failure::Bridge(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Bridge(BridgeError::Channel(e))
    }
}

fn invalid(what: impl Into<String>) -> Failure {
    Failure::Bridge(BridgeError::InvalidArgument(what.into()))
}

/// The Java exception class for a channel error.
fn class_of(e: &Error) -> &'static JNIStr {
    match e {
        Error::PeerClosed => jni_str!("dev/secureipc/PeerClosedException"),
        Error::MessageTooLarge { .. } => jni_str!("dev/secureipc/MessageTooLargeException"),
        Error::Full => jni_str!("dev/secureipc/ChannelFullException"),
        Error::AuthenticationFailed => jni_str!("dev/secureipc/AuthenticationFailedException"),
        Error::NotPermitted => jni_str!("dev/secureipc/PermissionDeniedException"),
        Error::NoSuchChannel => jni_str!("dev/secureipc/NoSuchChannelException"),
        Error::ChannelExists => jni_str!("dev/secureipc/ChannelExistsException"),
        Error::Busy => jni_str!("dev/secureipc/ChannelBusyException"),
        Error::ModuleNotLoaded => jni_str!("dev/secureipc/ModuleNotLoadedException"),
        Error::InvalidName => jni_str!("dev/secureipc/InvalidChannelNameException"),
        Error::InvalidGeometry => jni_str!("dev/secureipc/InvalidGeometryException"),
        Error::IdentityRejected | Error::OwnerRejected => {
            jni_str!("dev/secureipc/IdentityRejectedException")
        }
        Error::PskMismatch => jni_str!("dev/secureipc/PskMismatchException"),
        Error::NotConnected => jni_str!("dev/secureipc/NotConnectedException"),
        Error::Protocol(_) => jni_str!("dev/secureipc/ProtocolException"),
        Error::TimedOut => jni_str!("dev/secureipc/TimedOutException"),
        _ => jni_str!("dev/secureipc/SecureIpcException"),
    }
}

/// Builds and throws `class(message, errno)` or, for a size error,
/// `MessageTooLargeException(message, errno, length, maximum)`.
fn throw_channel_error(
    env: &mut Env<'_>,
    class: &JNIStr,
    message: &str,
    errno: i32,
    sizes: Option<(usize, usize)>,
) -> jni::errors::Result<()> {
    let jmsg = env.new_string(message)?;
    let obj = match sizes {
        None => env.new_object(
            class,
            jni_sig!("(Ljava/lang/String;I)V"),
            &[JValue::Object(&jmsg), JValue::Int(errno)],
        )?,
        Some((len, max)) => env.new_object(
            class,
            jni_sig!("(Ljava/lang/String;III)V"),
            &[
                JValue::Object(&jmsg),
                JValue::Int(errno),
                JValue::Int(i32::try_from(len).unwrap_or(i32::MAX)),
                JValue::Int(i32::try_from(max).unwrap_or(i32::MAX)),
            ],
        )?,
    };
    let throwable = env.cast_local::<JThrowable>(obj)?;
    // `throw` reports the now-pending exception as an error: that is the
    // outcome we want, not a failure.
    let _ = env.throw(throwable);
    Ok(())
}

/// Throws the Java exception that mirrors `failure`.
fn throw_failure(env: &mut Env<'_>, failure: &Failure) -> jni::errors::Result<()> {
    let message = failure.to_string();
    let simple = |env: &mut Env<'_>, class: &JNIStr| {
        let _ = env.throw_new(class, JNIString::new(&message));
        Ok(())
    };
    match failure {
        // jni-rs catches the OutOfMemoryError of a failed allocation and
        // reports NoMemory: throw one again, for the caller to handle as such.
        Failure::Jni(jni::errors::Error::JniCall(jni::errors::JniError::NoMemory)) => {
            let _ = env.throw_new(
                jni_str!("java/lang/OutOfMemoryError"),
                jni_str!(
                    "no Java heap for the received message; it stays queued for the next receive"
                ),
            );
            Ok(())
        }
        Failure::Jni(_) => simple(env, jni_str!("java/lang/RuntimeException")),
        Failure::Bridge(BridgeError::Closed) => {
            simple(env, jni_str!("java/lang/IllegalStateException"))
        }
        Failure::Bridge(BridgeError::Shutdown) => {
            simple(env, jni_str!("java/lang/IllegalStateException"))
        }
        Failure::Bridge(BridgeError::Poisoned) => {
            simple(env, jni_str!("java/lang/IllegalStateException"))
        }
        Failure::Bridge(BridgeError::InvalidArgument(_)) => {
            simple(env, jni_str!("java/lang/IllegalArgumentException"))
        }
        Failure::Bridge(BridgeError::BufferTooSmall { len, room }) => throw_channel_error(
            env,
            jni_str!("dev/secureipc/MessageTooLargeException"),
            &message,
            libc::EMSGSIZE,
            Some((*len, *room)),
        ),
        // The caller's mistake (e.g. an all-zero pre-shared key), not the channel's.
        Failure::Bridge(BridgeError::Channel(Error::InvalidArgument(_))) => {
            simple(env, jni_str!("java/lang/IllegalArgumentException"))
        }
        Failure::Bridge(BridgeError::Channel(e)) => {
            let sizes = match e {
                Error::MessageTooLarge { len, max } => Some((*len, *max)),
                _ => None,
            };
            throw_channel_error(env, class_of(e), &message, e.errno(), sizes)
        }
    }
}

/// Error policy of every entry point: errors become the matching Java
/// exception, panics a RuntimeException; the native returns a default
/// value (0, false, null) that Java never sees because an exception is
/// pending.
struct ThrowJava;

impl<T: Default> ErrorPolicy<T, Failure> for ThrowJava {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut (),
        err: Failure,
    ) -> jni::errors::Result<T> {
        // A JNI call that failed because Java threw: let that exception through.
        if !env.exception_check() {
            throw_failure(env, &err)?;
        }
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _cap: &mut (),
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        // Dropping an arbitrary payload could panic again; a bug path may leak it.
        std::mem::forget(payload);
        if !env.exception_check() {
            let msg = format!("secure_ipc internal error (native panic): {what}");
            let _ = env.throw_new(jni_str!("java/lang/RuntimeException"), JNIString::new(msg));
        }
        Ok(T::default())
    }
}

fn lookup(handle: jlong) -> Result<Arc<Endpoint>, Failure> {
    let map = HANDLES.read().map_err(|_| BridgeError::Poisoned)?;
    map.get(&handle)
        .cloned()
        .ok_or(Failure::Bridge(BridgeError::Closed))
}

/// An optional 32-byte key from Java (`null`: none).
fn key32(
    env: &Env<'_>,
    arr: &JByteArray<'_>,
    what: &str,
) -> Result<Option<Zeroizing<[u8; 32]>>, Failure> {
    if arr.is_null() {
        return Ok(None);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    if arr.len(env)? != 32 {
        return Err(invalid(format!("{what} must be 32 bytes")));
    }
    arr.get_region(env, 0, bytemuck::cast_slice_mut(&mut key[..]))?;
    Ok(Some(key))
}

/// Checks `[off, off + len)` inside a buffer of `cap` bytes.
fn range(off: jint, len: jint, cap: usize) -> Result<(usize, usize), Failure> {
    let (Ok(off), Ok(len)) = (usize::try_from(off), usize::try_from(len)) else {
        return Err(invalid("negative offset or length"));
    };
    match off.checked_add(len) {
        Some(end) if end <= cap => Ok((off, len)),
        _ => Err(invalid(format!(
            "range {off}+{len} exceeds the buffer's {cap} bytes"
        ))),
    }
}

fn msg_type(ty: jint) -> Result<u16, Failure> {
    u16::try_from(ty).map_err(|_| invalid(format!("message type {ty} is not in 0..=65535")))
}

fn write_meta(env: &Env<'_>, meta: &JLongArray<'_>, info: &MessageInfo) -> Result<(), Failure> {
    let values: [jlong; META_LEN] = [
        info.len as jlong,
        jlong::from(info.msg_type),
        info.seq as jlong,
        info.timestamp_ns as jlong,
        jlong::from(info.pid),
        jlong::from(info.uid),
        jlong::from(info.gid),
    ];
    meta.set_region(env, 0, &values)?;
    Ok(())
}

fn check_meta(env: &Env<'_>, meta: &JLongArray<'_>) -> Result<(), Failure> {
    if meta.is_null() || meta.len(env)? < META_LEN {
        return Err(invalid(format!("meta must be a long[{META_LEN}]")));
    }
    Ok(())
}

/// `static native long open(boolean create, String name, int backend, int
/// slots, int slotSize, int waitMode, int spins, long peerUid, long peerGid,
/// long peerPidns, byte[] peerIdentity, byte[] identitySecret, byte[] psk,
/// String socketDir)`: a new handle.
#[allow(clippy::too_many_arguments)]
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn open<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    create: jboolean,
    name: JString<'local>,
    backend: jint,
    slots: jint,
    slot_size: jint,
    wait_mode: jint,
    spins: jint,
    peer_uid: jlong,
    peer_gid: jlong,
    peer_pidns: jlong,
    peer_identity: JByteArray<'local>,
    identity_secret: JByteArray<'local>,
    psk: JByteArray<'local>,
    socket_dir: JString<'local>,
) -> jlong {
    unowned_env
        .with_env(|env| -> Result<jlong, Failure> {
            if name.is_null() {
                return Err(invalid("name is null"));
            }
            let name = name.try_to_string(env)?;
            let backend = match backend {
                0 => Backend::Auto,
                1 => Backend::Kernel,
                2 => Backend::Userspace,
                _ => return Err(invalid("backend")),
            };
            let spins = u32::try_from(spins).map_err(|_| invalid("spins must be >= 0"))?;
            let wait = match wait_mode {
                0 => WaitPolicy::SpinThenBlock { spins },
                1 => WaitPolicy::BusyPoll,
                2 => WaitPolicy::Block,
                _ => return Err(invalid("wait mode")),
            };
            let id32 = |v: jlong, what: &str| -> Result<Option<u32>, Failure> {
                if v < 0 {
                    Ok(None)
                } else {
                    u32::try_from(v)
                        .map(Some)
                        .map_err(|_| invalid(format!("{what} out of range")))
                }
            };
            let policy = PeerPolicy {
                uid: id32(peer_uid, "peer uid")?,
                gid: id32(peer_gid, "peer gid")?,
                pidns: match u32::try_from(peer_pidns) {
                    Ok(pid) => Some(secure_ipc::PidNamespace::of_pid(pid)?),
                    Err(_) => None,
                },
                identity_pub: key32(env, &peer_identity, "peer identity public key")?.map(|k| *k),
            };
            let geometry = |v: jint, what: &str| {
                u32::try_from(v).map_err(|_| invalid(format!("{what} must be > 0")))
            };
            let mut opts = Options::new()
                .backend(backend)
                .slots(geometry(slots, "slots")?)
                .slot_size(geometry(slot_size, "slot size")?)
                .wait(wait);
            // No policy field: the backend's default (userspace: same uid).
            if policy != PeerPolicy::default() {
                opts = opts.policy(policy);
            }
            if let Some(secret) = key32(env, &identity_secret, "identity secret key")? {
                opts = opts.identity(IdentityKey::from(*secret));
            }
            if let Some(k) = key32(env, &psk, "pre-shared key")? {
                opts = opts.psk(*k);
            }
            if !socket_dir.is_null() {
                opts = opts.socket_dir(socket_dir.try_to_string(env)?);
            }
            let ep = if create {
                Endpoint::create(&name, &opts, wait)?
            } else {
                Endpoint::attach(&name, &opts, wait)?
            };
            // Relaxed: only uniqueness matters; the map's lock publishes the entry.
            let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
            HANDLES
                .write()
                .map_err(|_| BridgeError::Poisoned)?
                .insert(handle, Arc::new(ep));
            Ok(handle)
        })
        .resolve::<ThrowJava>()
}

/// `static native boolean send(Object owner, long h, int type, byte[] data, int off, int
/// len, long timeoutNanos)`: false if the timeout ran out.
#[allow(clippy::too_many_arguments)]
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn send<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
    ty: jint,
    data: JByteArray<'local>,
    off: jint,
    len: jint,
    timeout_nanos: jlong,
) -> jboolean {
    unowned_env
        .with_env(|env| -> Result<jboolean, Failure> {
            let ep = lookup(handle)?;
            if data.is_null() {
                return Err(invalid("data is null"));
            }
            let (off, len) = range(off, len, data.len(env)?)?;
            let ty = msg_type(ty)?;
            if len > ep.max_message_size() {
                return Err(Error::MessageTooLarge {
                    len,
                    max: ep.max_message_size(),
                }
                .into());
            }
            // One copy out of the Java heap (arrays may move; the bridge must
            // not hold them pinned across a wait), one into the slot. The
            // staging buffer is per thread, so steady sending allocates nothing.
            with_send_staging(len, |buf| {
                data.get_region(env, off as jint, buf)
                    .map_err(Failure::from)
                    .and_then(|()| {
                        Ok(ep.send(
                            ty,
                            bytemuck::cast_slice(buf),
                            Wait::from_nanos(timeout_nanos),
                        )?)
                    })
            })
        })
        .resolve::<ThrowJava>()
}

/// `static native boolean sendDirect(Object owner, long h, int type, ByteBuffer buf, int
/// off, int len, long timeoutNanos)`: sends straight from a direct buffer's
/// memory (no copy in the bridge).
#[allow(clippy::too_many_arguments)]
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn send_direct<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
    ty: jint,
    buf: JByteBuffer<'local>,
    off: jint,
    len: jint,
    timeout_nanos: jlong,
) -> jboolean {
    unowned_env
        .with_env(|env| -> Result<jboolean, Failure> {
            let ep = lookup(handle)?;
            let ty = msg_type(ty)?;
            let (addr, cap) = direct_buffer(env, &buf)?;
            let (off, len) = range(off, len, cap)?;
            // SAFETY: the JVM keeps a direct buffer's [addr, addr + cap)
            // allocated while the buffer is reachable, and `buf` is a live
            // local reference for this whole call; off + len <= cap was
            // checked. Java code writing the buffer concurrently would only
            // change which bytes are sent (any u8 is valid).
            let payload = unsafe { std::slice::from_raw_parts(addr.add(off), len) };
            Ok(ep.send(ty, payload, Wait::from_nanos(timeout_nanos))?)
        })
        .resolve::<ThrowJava>()
}

/// A direct buffer's address and capacity; IllegalArgumentException for a
/// heap buffer.
fn direct_buffer(env: &Env<'_>, buf: &JByteBuffer<'_>) -> Result<(*mut u8, usize), Failure> {
    if buf.is_null() {
        return Err(invalid("buffer is null"));
    }
    let addr = env
        .get_direct_buffer_address(buf)
        .map_err(|_| invalid("not a direct ByteBuffer"))?;
    if addr.is_null() {
        return Err(invalid("not a direct ByteBuffer"));
    }
    let cap = env.get_direct_buffer_capacity(buf)?;
    Ok((addr, cap))
}

/// `static native byte[] receive(Object owner, long h, long timeoutNanos, long[] meta)`:
/// the payload (meta filled), or null if the timeout ran out.
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn receive<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
    timeout_nanos: jlong,
    meta: JLongArray<'local>,
) -> JByteArray<'local> {
    unowned_env
        .with_env(|env| -> Result<JByteArray<'local>, Failure> {
            let ep = lookup(handle)?;
            check_meta(env, &meta)?;
            // The array is allocated and filled while the message is still
            // in its slot; if that fails (OutOfMemoryError), the message
            // stays queued for the next receive.
            let got = ep.receive(
                Wait::from_nanos(timeout_nanos),
                |info, payload| match write_meta(env, &meta, info)
                    .and_then(|()| Ok(env.byte_array_from_slice(payload)?))
                {
                    Ok(arr) => Delivery::Taken(Ok(arr)),
                    Err(e) => Delivery::Declined(Err(e)),
                },
            )?;
            match got {
                Some(arr) => arr,
                None => Ok(JByteArray::default()),
            }
        })
        .resolve::<ThrowJava>()
}

/// `static native int receiveDirect(Object owner, long h, ByteBuffer buf, int off, int
/// room, long timeoutNanos, long[] meta)`: copies the payload into a direct
/// buffer at `off` and returns its length, or -1 if the timeout ran out. A
/// message longer than `room` stays queued (MessageTooLargeException).
#[allow(clippy::too_many_arguments)]
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn receive_direct<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
    buf: JByteBuffer<'local>,
    off: jint,
    room: jint,
    timeout_nanos: jlong,
    meta: JLongArray<'local>,
) -> jint {
    unowned_env
        .with_env(|env| -> Result<jint, Failure> {
            let ep = lookup(handle)?;
            check_meta(env, &meta)?;
            let (addr, cap) = direct_buffer(env, &buf)?;
            let (off, room) = range(off, room, cap)?;
            let got = ep.receive(Wait::from_nanos(timeout_nanos), |info, payload| {
                if payload.len() > room {
                    return Delivery::TooSmall { room };
                }
                // SAFETY: [addr + off, addr + off + room) lies in the direct
                // buffer (checked above), which the live local reference
                // `buf` keeps allocated; payload.len() <= room; the ring slot
                // and a Java buffer never overlap.
                unsafe {
                    std::ptr::copy_nonoverlapping(payload.as_ptr(), addr.add(off), payload.len())
                };
                match write_meta(env, &meta, info) {
                    Ok(()) => Delivery::Taken(Ok(payload.len() as jint)),
                    Err(e) => Delivery::Declined(Err(e)),
                }
            })?;
            match got {
                Some(n) => n,
                None => Ok(-1),
            }
        })
        .resolve::<ThrowJava>()
}

/// `static native int receiveArray(Object owner, long h, byte[] dst, int off, int room,
/// long timeoutNanos, long[] meta)`: as `receiveDirect`, into a Java array.
#[allow(clippy::too_many_arguments)]
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn receive_array<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
    dst: JByteArray<'local>,
    off: jint,
    room: jint,
    timeout_nanos: jlong,
    meta: JLongArray<'local>,
) -> jint {
    unowned_env
        .with_env(|env| -> Result<jint, Failure> {
            let ep = lookup(handle)?;
            check_meta(env, &meta)?;
            if dst.is_null() {
                return Err(invalid("destination array is null"));
            }
            let (off, room) = range(off, room, dst.len(env)?)?;
            let got = ep.receive(Wait::from_nanos(timeout_nanos), |info, payload| {
                if payload.len() > room {
                    return Delivery::TooSmall { room };
                }
                match dst
                    .set_region(env, off as jint, bytemuck::cast_slice(payload))
                    .map_err(Failure::from)
                    .and_then(|()| write_meta(env, &meta, info))
                {
                    Ok(()) => Delivery::Taken(Ok(payload.len() as jint)),
                    Err(e) => Delivery::Declined(Err(e)),
                }
            })?;
            match got {
                Some(n) => n,
                None => Ok(-1),
            }
        })
        .resolve::<ThrowJava>()
}

/// `static native int maxMessageSize(Object owner, long h)`.
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn max_message_size<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
) -> jint {
    unowned_env
        .with_env(|_env| -> Result<jint, Failure> {
            Ok(jint::try_from(lookup(handle)?.max_message_size()).unwrap_or(jint::MAX))
        })
        .resolve::<ThrowJava>()
}

/// `static native long[] stats(Object owner, long h)`: the counters in the order of
/// `dev.secureipc.Stats`.
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn stats<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
) -> JLongArray<'local> {
    unowned_env
        .with_env(|env| -> Result<JLongArray<'local>, Failure> {
            // Stats' table order, which dev.secureipc.Stats reads by index
            // (java_stats_reads_the_table_order checks it).
            let values = lookup(handle)?.stats()?.to_array().map(|v| v as jlong);
            let arr = JLongArray::new(env, values.len())?;
            arr.set_region(env, 0, &values)?;
            Ok(arr)
        })
        .resolve::<ThrowJava>()
}

/// `static native long[] peerCredentials(Object owner,
/// long h)`: pid, uid, gid, pid
/// namespace inode, user namespace inode, identity verified (0/1).
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn peer_credentials<'local>(
    mut unowned_env: EnvUnowned<'local>,
    _class: JClass<'local>,
    _owner: JObject<'local>,
    handle: jlong,
) -> JLongArray<'local> {
    unowned_env
        .with_env(|env| -> Result<JLongArray<'local>, Failure> {
            let p = lookup(handle)?.peer_credentials()?;
            let values = [
                jlong::from(p.cred.pid),
                jlong::from(p.cred.uid),
                jlong::from(p.cred.gid),
                p.pidns_ino as jlong,
                p.userns_ino as jlong,
                jlong::from(p.identity_verified),
            ];
            let arr = JLongArray::new(env, values.len())?;
            arr.set_region(env, 0, &values)?;
            Ok(arr)
        })
        .resolve::<ThrowJava>()
}

/// `static native void close(long h)`: idempotent.
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn close<'local>(mut unowned_env: EnvUnowned<'local>, _class: JClass<'local>, handle: jlong) {
    unowned_env
        .with_env(|_env| -> Result<(), Failure> {
            let removed = HANDLES
                .write()
                .map_err(|_| BridgeError::Poisoned)?
                .remove(&handle);
            if let Some(ep) = removed {
                // Calls still running on other threads see the flag within
                // one wait slice and return; the last one drops the endpoint.
                ep.close();
            }
            Ok(())
        })
        .resolve::<ThrowJava>()
}

/// `static native long liveHandles()`: endpoints alive in this process (the
/// leak check of the tests).
#[jni_mangle("dev.secureipc.NativeBridge")]
pub fn live_handles<'local>(mut unowned_env: EnvUnowned<'local>, _class: JClass<'local>) -> jlong {
    unowned_env
        .with_env(|_env| -> Result<jlong, Failure> { Ok(live_endpoints() as jlong) })
        .resolve::<ThrowJava>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_staging_buffer_holds_no_plaintext_after_a_send() {
        with_send_staging(64, |buf| buf.fill(0x37));
        let left = SEND_STAGING.with(|s| s.take());
        assert_eq!(left.len(), 64, "the buffer is kept for the next send");
        assert!(left.iter().all(|&b| b == 0), "plaintext left behind");
    }

    /// `dev.secureipc.Stats` takes the `long[]` by index: its `name = v[i]`
    /// lines must follow `Stats`' table (Java camelCase, "Messages" for "msgs").
    #[test]
    fn java_stats_reads_the_table_order() {
        let java = include_str!("../java/dev/secureipc/Stats.java");
        let mut read = Vec::new();
        for line in java.lines() {
            let Some((lhs, rhs)) = line.trim().split_once(" = ") else {
                continue;
            };
            let Some(idx) = rhs
                .trim_start_matches("(int) ")
                .strip_prefix("v[")
                .and_then(|r| r.strip_suffix("];"))
            else {
                continue;
            };
            let mut snake = String::new();
            for c in lhs.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            read.push((
                idx.parse::<usize>().unwrap(),
                snake.replace("_messages", "_msgs"),
            ));
        }
        let want: Vec<(usize, String)> = secure_ipc::Stats::NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.to_string()))
            .collect();
        assert_eq!(read, want);
    }
}
