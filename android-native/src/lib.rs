//! secure-ipc-jni: the secure_ipc client for Android and C.
//!
//! - [`jni_bridge`]: the natives of the Java API `dev.secureipc.SecureIpc`
//!   (java/dev/secureipc/), built as `libsecure_ipc_jni.so`.
//! - [`capi`]: the C ABI of `include/secure_ipc_client.h` for C/C++ native
//!   services, exported by the same library.
//! - [`endpoint`]: what both share: one channel endpoint with bounded,
//!   close-aware waits and a live-endpoint count for leak tests.
//!
//! Unsafe code is confined to the two foreign boundaries: raw pointers from
//! C callers (capi) and direct-buffer memory from the JVM (jni_bridge).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

pub mod capi;
pub mod endpoint;
pub mod jni_bridge;
