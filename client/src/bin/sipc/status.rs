//! `sipc stats` and `sipc info`.

use crate::Fail;
use secure_ipc::cli::args::Stats;
use secure_ipc::{resolve_backend, Backend, Options};

/// `sipc stats NAME`: the counters of a running userspace owner.
pub fn stats(a: &Stats) -> Result<(), Fail> {
    let name = &a.name;
    let mut o = Options::new();
    if let Some(d) = &a.socket_dir {
        o = o.socket_dir(d.clone());
    }
    if a.backend == Backend::Kernel {
        return Err(Fail(
            "kernel channels keep counters per endpoint: read them with Sender::stats() in the owning process".into(),
            2,
        ));
    }
    let s = secure_ipc::userspace::query_stats(name, &o)?;
    println!("channel {name} (owner side, userspace backend)");
    for (k, v) in s.rows() {
        println!("  {k:<24} {v:>16}");
    }
    Ok(())
}

/// `sipc info`: the module's presence, ABI, features and limits.
pub fn info() -> Result<(), Fail> {
    use secure_ipc_ring::abi as k;
    let loaded = std::path::Path::new("/sys/module/secure_ipc").exists();
    println!(
        "kernel module secure_ipc: {}",
        if loaded { "loaded" } else { "not loaded" }
    );
    println!(
        "device {}: {}",
        secure_ipc::DEVICE_PATH,
        if std::path::Path::new(secure_ipc::DEVICE_PATH).exists() {
            "present"
        } else {
            "absent"
        }
    );
    match secure_ipc::kernel_info() {
        Ok(i) => {
            println!(
                "  ABI version          {} (this tool: {})",
                i.abi_version,
                k::SIPC_ABI_VERSION
            );
            let names = [
                (k::SIPC_FEAT_MMAP_RINGS, "mmap-rings"),
                (k::SIPC_FEAT_READ_WRITE, "read-write"),
                (k::SIPC_FEAT_DOORBELL, "doorbell"),
                (k::SIPC_FEAT_X25519, "x25519"),
                (k::SIPC_FEAT_IDENTITY, "identity"),
                (k::SIPC_FEAT_PSK, "psk"),
                (k::SIPC_FEAT_REKEY, "rekey"),
                (k::SIPC_FEAT_TEST_HOOKS, "TEST-HOOKS"),
            ];
            let f: Vec<&str> = names
                .iter()
                .filter(|(b, _)| i.features & b != 0)
                .map(|(_, n)| *n)
                .collect();
            println!("  features             {}", f.join(" "));
            println!(
                "  slot size            {} .. {} bytes",
                i.min_slot_size, i.max_slot_size
            );
            println!(
                "  slots per ring       {} .. {}",
                i.min_entries, i.max_entries
            );
            println!(
                "  channels             {} of {}",
                i.nr_channels, i.max_channels
            );
            println!("  bytes per channel    {}", i.max_channel_bytes);
            println!("  records per epoch    {}", i.rekey_records);
        }
        Err(e) => println!("  {e}"),
    }
    println!("userspace backend: available (memfd + Unix socket rendezvous)");
    println!(
        "  slot size            {} .. {} bytes; largest message = slot size - 56",
        k::SIPC_MIN_SLOT_SIZE.max(128),
        k::SIPC_MAX_SLOT_SIZE
    );
    println!(
        "  records per epoch    {}",
        secure_ipc::DEFAULT_REKEY_RECORDS
    );
    println!(
        "--backend auto selects: {:?}",
        resolve_backend(Backend::Auto)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
