#![no_main]
//! libFuzzer entry point; the body is secure_ipc_fuzz::cli_args.

libfuzzer_sys::fuzz_target!(|data: &[u8]| secure_ipc_fuzz::cli_args(data));
