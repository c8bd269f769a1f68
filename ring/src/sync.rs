//! Atomics used by the ring, switched to loom's model-checked versions under
//! `cfg(loom)` (the tokio layout): the protocol code names `sync::AtomicU32`,
//! `sync::fence` and `sync::Ordering` and never the std/core paths directly,
//! so the loom models in `loom-tests/` run the production code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, Ordering};

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell as LoomUnsafeCell;
