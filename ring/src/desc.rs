//! Descriptor types the ring can carry.

use crate::abi::{RxDesc, TxDesc};
use bytemuck::Pod;

/// A fixed-size descriptor stored in the ring's descriptor array.
///
/// Any `#[repr(C)]` plain-old-data type with a payload length works: the
/// kernel rings use [`TxDesc`] (16 bytes) and [`RxDesc`] (64 bytes), and a
/// user-space backend may define its own. The consumer copies a descriptor
/// out of shared memory once and checks [`Descriptor::payload_len`] against
/// the slot size before touching the slot.
pub trait Descriptor: Pod + Send {
    /// Payload bytes in the descriptor's slot, as written by the producer.
    fn payload_len(&self) -> u32;
    /// Sets the payload length (used by [`crate::Producer::push`]).
    fn set_payload_len(&mut self, len: u32);
}

impl Descriptor for TxDesc {
    fn payload_len(&self) -> u32 {
        self.len
    }
    fn set_payload_len(&mut self, len: u32) {
        self.len = len;
    }
}

impl Descriptor for RxDesc {
    fn payload_len(&self) -> u32 {
        self.len
    }
    fn set_payload_len(&mut self, len: u32) {
        self.len = len;
    }
}
