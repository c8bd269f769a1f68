#![no_main]
//! libFuzzer entry point; the body is secure_ipc_fuzz::ring_consumer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_ipc_fuzz::ring_consumer(data));
