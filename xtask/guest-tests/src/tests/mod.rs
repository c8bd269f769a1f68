//! The test registry.
//!
//! # Adding tests
//!
//! 1. Create `src/tests/<area>.rs` (one file per area: `device.rs` is the
//!    device node and ioctl argument rules; data path, security... get
//!    their own files) with a list of tests:
//!
//!    ```ignore
//!    use crate::harness::{Test, TestResult, Needs};
//!
//!    pub const TESTS: &[Test] = &[
//!        Test::new("send_on_unattached_file_is_enotconn", send_on_unattached_file_is_enotconn),
//!        Test::new("kernel_record_opens_with_aes_gcm", kernel_record_opens_with_aes_gcm)
//!            .needs(Needs::TestHooksModule)
//!            .timeout(300),
//!    ];
//!
//!    fn send_on_unattached_file_is_enotconn() -> TestResult { ... }
//!    ```
//! 2. Add `mod <area>;` below and `<area>::TESTS` to [`all`].
//!
//! Rules: one behaviour per test, named after it; a test returns `Err` with
//! what it saw (the [`check!`](crate::check) macro and
//! [`expect_errno`](crate::harness::expect_errno) help); each test runs in
//! its own process, as root, with the module build it asks for already
//! loaded (default parameters). A test may unload or reload the module
//! (`harness::load_module` with parameters); the runner restores the
//! default before the next test. Tests can use `/tmp` (tmpfs). Run only
//! some with `cargo xtask vm-test --filter SUBSTRING`.

use crate::harness::Test;

mod abi_fuzz;
mod at_rest;
mod client_api;
mod client_kernel;
mod client_tokio;
mod datapath;
mod device;
mod hostile;
mod kchan;
mod race_pairs;
mod races;
mod resources;
mod security;

/// Every test, in run order.
pub fn all() -> Vec<&'static Test> {
    [
        device::TESTS,
        datapath::TESTS,
        security::TESTS,
        hostile::TESTS,
        client_kernel::TESTS,
        client_api::TESTS,
        client_tokio::TESTS,
        resources::TESTS,
        at_rest::TESTS,
        races::TESTS,
        race_pairs::TESTS,
        abi_fuzz::TESTS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(test)]
mod unit {
    #[test]
    fn test_names_are_unique() {
        let mut names: Vec<_> = super::all().iter().map(|t| t.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate test names");
    }
}
