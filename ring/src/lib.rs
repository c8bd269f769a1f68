//! secure-ipc-ring: the SPSC ring protocol of secure_ipc over a raw memory region (being written).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod abi;
