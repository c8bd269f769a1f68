//! The device node, module load/unload, and the ioctl argument rules
//! (size-first structs, EINVAL / E2BIG / ENOTTY / EFAULT), checked on INFO.

use crate::check;
use crate::harness::{self, expect_errno, info, Needs, Test, TestResult};
use crate::sys::{self, ioctl_bytes, ioctl_none, ioctl_ptr, ioctl_struct};
use secure_ipc_ring::abi;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// SIPC_INFO_SIZE_VER0 of the header: the first published INFO size.
const INFO_SIZE_VER0: usize = 88;

/// The tests of this file.
pub const TESTS: &[Test] = &[
    Test::new(
        "device_node_is_char_device_mode_0600",
        device_node_is_char_device_mode_0600,
    ),
    Test::new(
        "device_mode_follows_mode_parameter",
        device_mode_follows_mode_parameter,
    ),
    Test::new(
        "info_reports_abi_version_and_limits",
        info_reports_abi_version_and_limits,
    ),
    Test::new(
        "info_normal_build_has_no_test_hooks",
        info_normal_build_has_no_test_hooks,
    ),
    Test::new(
        "info_test_hooks_build_reports_test_hooks",
        info_test_hooks_build_reports_test_hooks,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "test_keys_ioctl_is_enotty_in_normal_build",
        test_keys_ioctl_is_enotty_in_normal_build,
    ),
    Test::new("unknown_ioctl_is_enotty", unknown_ioctl_is_enotty),
    Test::new(
        "ioctl_with_foreign_magic_is_enotty",
        ioctl_with_foreign_magic_is_enotty,
    ),
    Test::new(
        "info_shorter_than_ver0_is_einval",
        info_shorter_than_ver0_is_einval,
    ),
    Test::new(
        "info_longer_with_nonzero_tail_is_e2big",
        info_longer_with_nonzero_tail_is_e2big,
    ),
    Test::new(
        "info_longer_with_zero_tail_is_accepted",
        info_longer_with_zero_tail_is_accepted,
    ),
    Test::new(
        "info_unreadable_pointer_is_efault",
        info_unreadable_pointer_is_efault,
    ),
    Test::new(
        "module_loads_and_unloads_20_times",
        module_loads_and_unloads_20_times,
    )
    .timeout(300),
];

fn device_node_is_char_device_mode_0600() -> TestResult {
    let m = std::fs::metadata(sys::DEVICE).map_err(|e| format!("stat {}: {e}", sys::DEVICE))?;
    check!(
        m.file_type().is_char_device(),
        "{} is not a character device",
        sys::DEVICE
    );
    check!(
        m.mode() & 0o7777 == 0o600,
        "mode is {:o}, expected 600",
        m.mode() & 0o7777
    );
    check!(
        m.uid() == 0 && m.gid() == 0,
        "owner is {}:{}, expected 0:0",
        m.uid(),
        m.gid()
    );
    Ok(())
}

fn device_mode_follows_mode_parameter() -> TestResult {
    harness::unload_module()?;
    harness::load_module(Needs::Module, &["mode=0660"])?;
    let m = std::fs::metadata(sys::DEVICE).map_err(|e| format!("stat {}: {e}", sys::DEVICE))?;
    check!(
        m.mode() & 0o7777 == 0o660,
        "mode is {:o} with mode=0660",
        m.mode() & 0o7777
    );
    Ok(())
}

fn info_reports_abi_version_and_limits() -> TestResult {
    let f = sys::open_device()?;
    let i = info(&f)?;
    check!(
        i.abi_version == abi::SIPC_ABI_VERSION,
        "abi_version {}",
        i.abi_version
    );
    check!(
        i.size == std::mem::size_of::<abi::Info>() as u32,
        "size echoed as {}",
        i.size
    );
    check!(
        i.min_slot_size == abi::SIPC_MIN_SLOT_SIZE,
        "min_slot_size {}",
        i.min_slot_size
    );
    check!(
        i.max_slot_size.is_power_of_two()
            && (i.min_slot_size..=abi::SIPC_MAX_SLOT_SIZE).contains(&i.max_slot_size),
        "max_slot_size {}",
        i.max_slot_size
    );
    check!(
        i.min_entries == abi::SIPC_MIN_ENTRIES,
        "min_entries {}",
        i.min_entries
    );
    check!(
        i.max_entries.is_power_of_two()
            && (i.min_entries..=abi::SIPC_MAX_ENTRIES).contains(&i.max_entries),
        "max_entries {}",
        i.max_entries
    );
    check!(i.max_channels > 0, "max_channels 0");
    check!(
        i.nr_channels == 0,
        "nr_channels {} with no channel open",
        i.nr_channels
    );
    check!(i.max_channel_bytes > 0, "max_channel_bytes 0");
    check!(
        i.reserved == [0; 2] && i.reserved0 == 0,
        "reserved not zero: {:?}",
        i.reserved
    );
    Ok(())
}

fn info_normal_build_has_no_test_hooks() -> TestResult {
    let i = info(&sys::open_device()?)?;
    check!(
        i.features & abi::SIPC_FEAT_TEST_HOOKS == 0,
        "features {:#x}",
        i.features
    );
    Ok(())
}

fn info_test_hooks_build_reports_test_hooks() -> TestResult {
    let i = info(&sys::open_device()?)?;
    check!(
        i.features & abi::SIPC_FEAT_TEST_HOOKS != 0,
        "features {:#x}",
        i.features
    );
    Ok(())
}

fn test_keys_ioctl_is_enotty_in_normal_build() -> TestResult {
    let f = sys::open_device()?;
    let mut k = abi::TestKeys {
        size: std::mem::size_of::<abi::TestKeys>() as u32,
        ..Default::default()
    };
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_TEST_KEYS, &mut k),
        libc::ENOTTY,
        "TEST_KEYS",
    )?;
    check!(
        k.tx_key == [0; 32],
        "TEST_KEYS wrote key bytes in a normal build"
    );
    Ok(())
}

fn unknown_ioctl_is_enotty() -> TestResult {
    let f = sys::open_device()?;
    expect_errno(ioctl_none(&f, abi::io(0x3f)), libc::ENOTTY, "ioctl nr 0x3f")
}

fn ioctl_with_foreign_magic_is_enotty() -> TestResult {
    let f = sys::open_device()?;
    // INFO's number with another magic (0xBD).
    let mut buf = info_buf(std::mem::size_of::<abi::Info>());
    expect_errno(
        ioctl_bytes(&f, 0xBD << 8, &mut buf),
        libc::ENOTTY,
        "magic 0xBD",
    )
}

/// An INFO argument of `len` bytes declaring `len` as its size.
fn info_buf(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(4)];
    b[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    b
}

fn info_shorter_than_ver0_is_einval() -> TestResult {
    let f = sys::open_device()?;
    let mut b = info_buf(INFO_SIZE_VER0 - 8);
    expect_errno(
        ioctl_bytes(&f, abi::SIPC_IOC_INFO, &mut b),
        libc::EINVAL,
        "INFO size 80",
    )?;
    check!(
        b[4..].iter().all(|&x| x == 0),
        "the kernel wrote into a rejected struct"
    );
    Ok(())
}

fn info_longer_with_nonzero_tail_is_e2big() -> TestResult {
    let f = sys::open_device()?;
    let len = std::mem::size_of::<abi::Info>() + 16;
    let mut b = info_buf(len);
    b[len - 1] = 1;
    expect_errno(
        ioctl_bytes(&f, abi::SIPC_IOC_INFO, &mut b),
        libc::E2BIG,
        "INFO +16, tail 1",
    )
}

fn info_longer_with_zero_tail_is_accepted() -> TestResult {
    let f = sys::open_device()?;
    let known = std::mem::size_of::<abi::Info>();
    let mut b = info_buf(known + 16);
    ioctl_bytes(&f, abi::SIPC_IOC_INFO, &mut b).map_err(|e| format!("INFO +16, zero tail: {e}"))?;
    let i: abi::Info = bytemuck::pod_read_unaligned(&b[..known]);
    check!(
        i.abi_version == abi::SIPC_ABI_VERSION,
        "abi_version {} in the longer struct",
        i.abi_version
    );
    check!(
        b[known..].iter().all(|&x| x == 0),
        "the kernel wrote past the struct it knows"
    );
    Ok(())
}

fn info_unreadable_pointer_is_efault() -> TestResult {
    let f = sys::open_device()?;
    // Page 0 is never mapped in a process.
    expect_errno(
        ioctl_ptr(&f, abi::SIPC_IOC_INFO, 16 as *mut u8),
        libc::EFAULT,
        "INFO at 0x10",
    )
}

fn module_loads_and_unloads_20_times() -> TestResult {
    for round in 1..=20 {
        harness::unload_module().map_err(|e| format!("round {round}: {e}"))?;
        check!(
            std::fs::metadata(sys::DEVICE).is_err(),
            "round {round}: {} still exists after rmmod",
            sys::DEVICE
        );
        harness::load_module(Needs::Module, &[]).map_err(|e| format!("round {round}: {e}"))?;
        let i = info(&sys::open_device()?).map_err(|e| format!("round {round}: {e}"))?;
        check!(
            i.abi_version == abi::SIPC_ABI_VERSION,
            "round {round}: abi_version {}",
            i.abi_version
        );
    }
    Ok(())
}
