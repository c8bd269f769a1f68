//! Cross-check of the Rust ABI mirror (`ring/src/abi.rs`) against the C
//! compiler's view of the real uapi header.
//!
//! The test parses `kernel/include/uapi/linux/secure_ipc.h` for every
//! `struct sipc_*`, every field and every `#define SIPC_*`, generates a C
//! program that prints each struct size, each field offset and size, each
//! constant, and the `_IOC_DIR/_IOC_TYPE/_IOC_NR/_IOC_SIZE` decomposition of
//! each ioctl number, compiles it with the system C compiler
//! (`-std=c99 -Wall -Wextra -Werror`), runs it and compares every line with
//! the Rust side. Anything in the header without a Rust counterpart, any
//! Rust entry the header lacks, and any differing value fails the test.

use secure_ipc_ring::abi::*;
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

fn header_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel/include/uapi/linux/secure_ipc.h")
}

fn fsize<T, F>(_: fn(&T) -> &F) -> u64 {
    size_of::<F>() as u64
}

/// `struct sipc_x` -> (fields in order) parsed from the header text.
fn parse_structs(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("struct ") {
            if let Some(name) = rest.strip_suffix(" {") {
                cur = Some((name.to_string(), Vec::new()));
                continue;
            }
        }
        if let Some((name, fields)) = cur.as_mut() {
            if t == "};" {
                out.insert(name.clone(), std::mem::take(fields));
                cur = None;
                continue;
            }
            let t = t.split("/*").next().unwrap_or("").trim();
            if let Some(decl) = t.strip_suffix(';') {
                let ident = decl
                    .split_whitespace()
                    .last()
                    .expect("field declaration")
                    .split('[')
                    .next()
                    .unwrap();
                fields.push(ident.to_string());
            }
        }
    }
    out
}

/// Object-like `#define SIPC_*` names in the header.
fn parse_defines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("#define"))
        .filter_map(|rest| {
            let name = rest.split_whitespace().next()?;
            (name.starts_with("SIPC_") && !name.contains('(')).then(|| name.to_string())
        })
        .collect()
}

/// The Rust view: key -> value. Keys are `size S`, `off S.F`, `fsize S.F`,
/// `const NAME`, `ioc NAME dir|type|nr|size`.
fn rust_view() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    macro_rules! st {
        ($c:literal, $t:ty, [$($cf:literal => $rf:ident),* $(,)?]) => {{
            m.insert(format!("size {}", $c), size_of::<$t>() as u64);
            $(
                m.insert(format!("off {}.{}", $c, $cf), offset_of!($t, $rf) as u64);
                m.insert(format!("fsize {}.{}", $c, $cf), fsize(|x: &$t| &x.$rf));
            )*
        }};
    }
    st!("sipc_ring_hdr", RingHeader, ["magic" => magic, "abi_version" => abi_version,
        "kind" => kind, "entries" => entries, "slot_size" => slot_size,
        "desc_size" => desc_size, "desc_offset" => desc_offset,
        "slots_offset" => slots_offset, "ring_bytes" => ring_bytes,
        "reserved0" => reserved0, "prod" => prod, "pad1" => pad1, "cons" => cons,
        "pad2" => pad2, "prod_flags" => prod_flags, "pad3" => pad3,
        "cons_flags" => cons_flags, "pad4" => pad4, "store_prod" => store_prod,
        "store_cons" => store_cons, "store_entries" => store_entries, "status" => status,
        "pad5" => pad5, "reserved" => reserved]);
    st!("sipc_tx_desc", TxDesc, ["len" => len, "type" => type_, "flags" => flags,
        "reserved" => reserved]);
    st!("sipc_rx_desc", RxDesc, ["seq" => seq, "timestamp_ns" => timestamp_ns, "len" => len,
        "type" => type_, "flags" => flags, "sender_pid" => sender_pid,
        "sender_uid" => sender_uid, "sender_gid" => sender_gid, "epoch" => epoch,
        "reserved" => reserved]);
    st!("sipc_record_hdr", RecordHeader, ["channel_id" => channel_id, "seq" => seq,
        "timestamp_ns" => timestamp_ns, "epoch" => epoch, "len" => len, "type" => type_,
        "direction" => direction, "version" => version, "group_left" => group_left]);
    st!("sipc_info", Info, ["size" => size, "abi_version" => abi_version,
        "features" => features, "min_slot_size" => min_slot_size,
        "max_slot_size" => max_slot_size, "min_entries" => min_entries,
        "max_entries" => max_entries, "max_channels" => max_channels,
        "nr_channels" => nr_channels, "max_channel_bytes" => max_channel_bytes,
        "rekey_records" => rekey_records, "max_user_channels" => max_user_channels,
        "reserved0" => reserved0, "max_user_bytes" => max_user_bytes, "reserved" => reserved]);
    st!("sipc_create", Create, ["size" => size, "flags" => flags, "name" => name,
        "entries" => entries, "slot_size" => slot_size, "peer_uid" => peer_uid,
        "peer_gid" => peer_gid, "peer_pidns_fd" => peer_pidns_fd, "reserved1" => reserved1,
        "identity_pub" => identity_pub, "psk" => psk, "rekey_records" => rekey_records,
        "rekey_bytes" => rekey_bytes, "channel_id" => channel_id,
        "tx_ring_bytes" => tx_ring_bytes, "rx_ring_bytes" => rx_ring_bytes,
        "reserved" => reserved]);
    st!("sipc_challenge", Challenge, ["size" => size, "flags" => flags, "name" => name,
        "kernel_pub" => kernel_pub, "nonce" => nonce, "reserved" => reserved]);
    st!("sipc_attach", Attach, ["size" => size, "flags" => flags, "name" => name,
        "proof" => proof, "psk" => psk, "entries" => entries, "slot_size" => slot_size,
        "channel_id" => channel_id, "tx_ring_bytes" => tx_ring_bytes,
        "rx_ring_bytes" => rx_ring_bytes, "reserved" => reserved]);
    st!("sipc_doorbell", Doorbell, ["size" => size, "flags" => flags, "eventfd" => eventfd,
        "reserved" => reserved]);
    st!("sipc_peer_cred", PeerCred, ["size" => size, "flags" => flags, "pid" => pid,
        "uid" => uid, "gid" => gid, "identity_verified" => identity_verified,
        "pidns_ino" => pidns_ino, "userns_ino" => userns_ino, "reserved" => reserved]);
    st!("sipc_stats", Stats, ["size" => size, "flags" => flags, "sealed_msgs" => sealed_msgs,
        "sealed_bytes" => sealed_bytes, "opened_msgs" => opened_msgs,
        "opened_bytes" => opened_bytes, "badmsg" => badmsg, "store_full" => store_full,
        "doorbells_signalled" => doorbells_signalled,
        "doorbells_suppressed" => doorbells_suppressed, "eproto" => eproto,
        "rekeys" => rekeys, "attach_refused" => attach_refused, "tx_fill" => tx_fill,
        "rx_fill" => rx_fill, "store_out_fill" => store_out_fill,
        "store_in_fill" => store_in_fill, "tx_epoch" => tx_epoch, "rx_epoch" => rx_epoch,
        "tx_discarded" => tx_discarded, "reserved" => reserved]);
    st!("sipc_rekey", Rekey, ["size" => size, "flags" => flags, "new_epoch" => new_epoch,
        "reserved" => reserved]);
    st!("sipc_test_keys", TestKeys, ["size" => size, "flags" => flags, "tx_key" => tx_key,
        "tx_salt" => tx_salt, "tx_epoch" => tx_epoch]);
    st!("sipc_test_sealed", TestSealed, ["size" => size, "flags" => flags, "buf" => buf,
        "buf_len" => buf_len, "record_len" => record_len, "reserved" => reserved]);
    st!("sipc_test_kx", TestKx, ["size" => size, "flags" => flags, "name" => name,
        "owner_priv" => owner_priv, "peer_priv" => peer_priv, "identity_pub" => identity_pub,
        "nonce" => nonce, "psk" => psk, "owner_pub" => owner_pub, "peer_pub" => peer_pub,
        "proof" => proof, "o2p_key" => o2p_key, "p2o_key" => p2o_key,
        "o2p_key_epoch1" => o2p_key_epoch1, "o2p_salt" => o2p_salt, "p2o_salt" => p2o_salt]);
    st!("sipc_test_seal", TestSeal, ["size" => size, "flags" => flags, "key" => key,
        "salt" => salt, "epoch" => epoch, "channel_id" => channel_id, "seq" => seq,
        "clock_ns" => clock_ns]);
    st!("sipc_test_store", TestStore, ["size" => size, "flags" => flags, "buf" => buf,
        "buf_len" => buf_len, "store_len" => store_len]);

    macro_rules! consts {
        ($($n:ident),* $(,)?) => {$( m.insert(format!("const {}", stringify!($n)), $n as u64); )*};
    }
    consts!(
        SIPC_ABI_VERSION,
        SIPC_RING_MAGIC,
        SIPC_NAME_MAX,
        SIPC_MIN_SLOT_SIZE,
        SIPC_MAX_SLOT_SIZE,
        SIPC_MIN_ENTRIES,
        SIPC_MAX_ENTRIES,
        SIPC_KEY_LEN,
        SIPC_TAG_LEN,
        SIPC_MAX_REKEY_RECORDS,
        SIPC_MAX_REKEY_BYTES,
        SIPC_MAX_REKEY_UNSEALED,
        SIPC_ARG_SIZE_MAX,
        SIPC_SALT_LEN,
        SIPC_NONCE_LEN,
        SIPC_RING_HDR_SIZE,
        SIPC_OFF_TX_RING,
        SIPC_OFF_RX_RING,
        SIPC_RING_TX,
        SIPC_RING_RX,
        SIPC_DIR_OWNER_TO_PEER,
        SIPC_DIR_PEER_TO_OWNER,
        SIPC_FLAG_NEED_WAKEUP,
        SIPC_FLAG_CLOSED,
        SIPC_STATUS_PEER_ATTACHED,
        SIPC_STATUS_PEER_CLOSED,
        SIPC_STATUS_ERROR,
        SIPC_FEAT_MMAP_RINGS,
        SIPC_FEAT_READ_WRITE,
        SIPC_FEAT_DOORBELL,
        SIPC_FEAT_X25519,
        SIPC_FEAT_IDENTITY,
        SIPC_FEAT_PSK,
        SIPC_FEAT_REKEY,
        SIPC_FEAT_RECV_WAIT,
        SIPC_FEAT_SEND_WAIT,
        SIPC_WAIT_FOREVER,
        SIPC_FEAT_TEST_HOOKS,
        SIPC_POLICY_UID,
        SIPC_POLICY_GID,
        SIPC_POLICY_PIDNS,
        SIPC_POLICY_IDENTITY,
        SIPC_CREATE_PSK,
        SIPC_CREATE_FLAGS_ALL,
        SIPC_ATTACH_PROOF,
        SIPC_ATTACH_PSK,
        SIPC_ATTACH_FLAGS_ALL,
        SIPC_REKEY_TX,
        SIPC_REKEY_FLAGS_ALL,
        SIPC_IOC_MAGIC,
        SIPC_INFO_SIZE_VER0,
        SIPC_CREATE_SIZE_VER0,
        SIPC_CHALLENGE_SIZE_VER0,
        SIPC_ATTACH_SIZE_VER0,
        SIPC_DOORBELL_SIZE_VER0,
        SIPC_PEER_CRED_SIZE_VER0,
        SIPC_STATS_SIZE_VER0,
        SIPC_REKEY_SIZE_VER0,
        SIPC_TEST_KEYS_SIZE_VER0,
        SIPC_TEST_SEALED_SIZE_VER0,
        SIPC_TEST_KX_SIZE_VER0,
        SIPC_TEST_SEAL_SIZE_VER0,
        SIPC_TEST_STORE_SIZE_VER0,
        SIPC_TEST_KX_IDENTITY,
        SIPC_TEST_KX_PSK,
        SIPC_TEST_SEALED_FLIP,
    );
    // ioctl numbers: the value, and its _IO decomposition (no direction, no
    // size, our magic, the command number).
    macro_rules! iocs {
        ($($n:ident = $nr:expr),* $(,)?) => {$(
            m.insert(format!("const {}", stringify!($n)), $n as u64);
            m.insert(format!("ioc {} dir", stringify!($n)), 0);
            m.insert(format!("ioc {} type", stringify!($n)), SIPC_IOC_MAGIC as u64);
            m.insert(format!("ioc {} nr", stringify!($n)), $nr);
            m.insert(format!("ioc {} size", stringify!($n)), 0);
        )*};
    }
    iocs!(
        SIPC_IOC_INFO = 0x00,
        SIPC_IOC_CREATE = 0x01,
        SIPC_IOC_CHALLENGE = 0x02,
        SIPC_IOC_ATTACH = 0x03,
        SIPC_IOC_SEND = 0x04,
        SIPC_IOC_RECV = 0x05,
        SIPC_IOC_SET_DOORBELL = 0x06,
        SIPC_IOC_PEER_CRED = 0x07,
        SIPC_IOC_STATS = 0x08,
        SIPC_IOC_REKEY = 0x09,
        SIPC_IOC_RECV_WAIT = 0x0a,
        SIPC_IOC_SEND_WAIT = 0x0b,
        SIPC_IOC_TEST_KEYS = 0x40,
        SIPC_IOC_TEST_PEEK_SEALED = 0x41,
        SIPC_IOC_TEST_KEY_SCHEDULE = 0x42,
        SIPC_IOC_TEST_SET_SEAL = 0x43,
        SIPC_IOC_TEST_DUMP_STORE = 0x44,
    );
    m
}

/// The C program printing the compiler's view of everything in the header.
fn c_program(structs: &BTreeMap<String, Vec<String>>, defines: &[String]) -> String {
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include <linux/secure_ipc.h>\n\
         #define P(k, v) printf(\"%s %llu\\n\", k, (unsigned long long)(v))\n\
         int main(void)\n{\n",
    );
    for (s, fields) in structs {
        c += &format!("\tP(\"size {s}\", sizeof(struct {s}));\n");
        for f in fields {
            c += &format!("\tP(\"off {s}.{f}\", offsetof(struct {s}, {f}));\n");
            c += &format!("\tP(\"fsize {s}.{f}\", sizeof(((struct {s} *)0)->{f}));\n");
        }
    }
    for d in defines {
        c += &format!("\tP(\"const {d}\", {d});\n");
        if d.starts_with("SIPC_IOC_") && d != "SIPC_IOC_MAGIC" {
            for (part, mac) in [
                ("dir", "_IOC_DIR"),
                ("type", "_IOC_TYPE"),
                ("nr", "_IOC_NR"),
                ("size", "_IOC_SIZE"),
            ] {
                c += &format!("\tP(\"ioc {d} {part}\", {mac}({d}));\n");
            }
        }
    }
    c += "\treturn 0;\n}\n";
    c
}

fn compile_and_run(src: &str) -> BTreeMap<String, u64> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("abi_c");
    std::fs::create_dir_all(&dir).unwrap();
    let c_file = dir.join("abi_dump.c");
    let exe = dir.join("abi_dump");
    std::fs::write(&c_file, src).unwrap();
    let include = header_path()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg(&c_file)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "the uapi header does not compile as C99 with -Wall -Wextra -Werror:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
#[cfg_attr(miri, ignore = "runs the C compiler")]
fn rust_abi_matches_the_c_compilers_view_of_the_uapi_header() {
    let text = std::fs::read_to_string(header_path()).unwrap();
    let structs = parse_structs(&text);
    let defines = parse_defines(&text);
    assert!(structs.len() >= 14, "parsed only {} structs", structs.len());
    assert!(defines.len() >= 60, "parsed only {} defines", defines.len());
    let c = compile_and_run(&c_program(&structs, &defines));
    let rust = rust_view();

    let mut problems = Vec::new();
    for (k, cv) in &c {
        match rust.get(k) {
            None => problems.push(format!("{k}: C has {cv}, no Rust mirror")),
            Some(rv) if rv != cv => problems.push(format!("{k}: C {cv} != Rust {rv}")),
            Some(_) => {}
        }
    }
    for k in rust.keys().filter(|k| !c.contains_key(*k)) {
        problems.push(format!("{k}: in the Rust mirror, not in the header"));
    }
    println!("{} values compared, {} mismatches", c.len(), problems.len());
    assert!(
        problems.is_empty(),
        "ABI mismatch:\n{}",
        problems.join("\n")
    );
}
