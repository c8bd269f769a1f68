//! Replays every saved input of every target (`corpus/NAME/*`, the seeds
//! and what libFuzzer kept; `regressions/NAME/*`, inputs that once failed)
//! through the same bodies, on stable: the regression test of the fuzzers.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let data = std::fs::read(e.path()).expect("read input");
            body(&data);
            n += 1;
        }
    }
    n
}

fn abort_on_panic() {
    // As under libFuzzer: a panic on any thread (the owner's handshake
    // threads) is a failure, not a silently dead thread.
    std::panic::set_hook(Box::new(|p| {
        eprintln!("{p}");
        std::process::abort();
    }));
}

#[test]
fn record_open_corpus() {
    abort_on_panic();
    assert!(replay("record_open", secure_ipc_fuzz::record_open) > 0);
}

#[test]
fn ring_consumer_corpus() {
    abort_on_panic();
    assert!(replay("ring_consumer", secure_ipc_fuzz::ring_consumer) > 0);
}

#[test]
fn attach_handshake_corpus() {
    abort_on_panic();
    assert!(replay("attach_handshake", secure_ipc_fuzz::attach_handshake) > 0);
}

#[test]
fn owner_handshake_corpus() {
    abort_on_panic();
    assert!(replay("owner_handshake", secure_ipc_fuzz::owner_handshake) > 0);
}

#[test]
fn cli_args_corpus() {
    abort_on_panic();
    assert!(replay("cli_args", secure_ipc_fuzz::cli_args) > 0);
}

#[test]
fn cli_frames_corpus() {
    abort_on_panic();
    assert!(replay("cli_frames", secure_ipc_fuzz::cli_frames) > 0);
}
