//! `struct sipc_options` as an extensible struct (size first, as the
//! kernel's `copy_struct_from_user()`): the extern "C" functions called
//! with an older, smaller struct, a newer, larger one with a zero tail and
//! with a nonzero tail, and too small or too large sizes.

use secure_ipc_jni::capi::{
    sipc_attach, sipc_close, sipc_create, sipc_options_init, sipc_options_init_sized, sipc_recv,
    sipc_send, sipc_stats, SipcOptions, SipcStats, SIPC_OPTIONS_SIZE_VER0, SIPC_OPTIONS_SIZE_VER1,
};
use secure_ipc_jni::endpoint::Endpoint;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

/// Offsets of the header's layout (the C example asserts them too).
const OFF_BACKEND: usize = 4;
const OFF_REKEY_RECORDS: usize = 152;
const SIPC_BACKEND_USERSPACE: u32 = 2;

/// An 8-aligned byte buffer standing in for a caller's struct.
struct Buf(Vec<u64>);

impl Buf {
    fn new(len: usize, fill: u8) -> Buf {
        let mut b = Buf(vec![0; len.div_ceil(8)]);
        b.bytes_mut().fill(fill);
        b
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.0[..])
    }
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0[..])
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        self.bytes_mut()[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.bytes_mut()[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn u32_at(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.bytes()[off..off + 4].try_into().unwrap())
    }
    fn ptr(&mut self) -> *mut SipcOptions {
        self.0.as_mut_ptr().cast()
    }
}

/// Userspace-backend defaults in a buffer of `len` bytes (>= VER1).
fn userspace_opts(len: usize) -> Buf {
    let mut b = Buf::new(len.max(SIPC_OPTIONS_SIZE_VER1), 0);
    // SAFETY: the buffer has at least VER1 writable bytes.
    assert_eq!(
        unsafe { sipc_options_init_sized(b.ptr(), SIPC_OPTIONS_SIZE_VER1) },
        0
    );
    b.put_u32(OFF_BACKEND, SIPC_BACKEND_USERSPACE);
    b
}

fn name() -> CString {
    static N: AtomicU32 = AtomicU32::new(0);
    CString::new(format!(
        "copt{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

/// sipc_create with the caller's struct; the handle (closed on drop) or the errno.
fn create(b: &mut Buf) -> Result<Handle, i32> {
    let n = name();
    let mut ch: *mut Endpoint = std::ptr::null_mut();
    // SAFETY: `n` is NUL-terminated; `b` holds the bytes its size field
    // claims (each test keeps size <= buffer length, except the one that
    // checks a size over a page is refused before any read).
    let rc = unsafe { sipc_create(n.as_ptr(), b.ptr(), &mut ch) };
    if rc == 0 {
        Ok(Handle(ch, n))
    } else {
        Err(rc)
    }
}

struct Handle(*mut Endpoint, CString);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live handle from sipc_create/sipc_attach, closed once.
        unsafe { sipc_close(self.0) };
    }
}

/// Sends `n` messages owner -> peer, receives them, returns the owner's rekeys.
fn owner_rekeys_after(owner: &Handle, n: usize) -> u64 {
    let mut peer_opts = userspace_opts(SIPC_OPTIONS_SIZE_VER1);
    let mut peer: *mut Endpoint = std::ptr::null_mut();
    // SAFETY: NUL-terminated name, VER1 options, writable out pointer.
    assert_eq!(
        unsafe { sipc_attach(owner.1.as_ptr(), peer_opts.ptr(), &mut peer) },
        0
    );
    let peer = Handle(peer, owner.1.clone());
    let mut buf = [0u8; 64];
    for i in 0..n {
        // SAFETY: live handles; `buf` has 64 readable/writable bytes.
        unsafe {
            assert_eq!(
                sipc_send(owner.0, 0, buf.as_ptr().cast(), 8, 5000),
                0,
                "send {i}"
            );
            assert_eq!(
                sipc_recv(
                    peer.0,
                    buf.as_mut_ptr().cast(),
                    64,
                    std::ptr::null_mut(),
                    5000
                ),
                8
            );
        }
    }
    // SAFETY: SipcStats is plain integers; all-zero is valid.
    let mut st: SipcStats = unsafe { std::mem::zeroed() };
    // SAFETY: a live handle and a writable stats struct.
    assert_eq!(unsafe { sipc_stats(owner.0, &mut st) }, 0);
    st.rekeys()
}

#[test]
fn an_older_smaller_struct_is_read_as_far_as_its_size_and_the_rest_is_zero() {
    // A VER0 caller's struct followed by bytes that are not its: a
    // rekey_records of 1 there must not be read (it would rekey per record).
    let mut b = userspace_opts(SIPC_OPTIONS_SIZE_VER1);
    b.put_u64(OFF_REKEY_RECORDS, 1);
    b.put_u32(0, SIPC_OPTIONS_SIZE_VER0 as u32);
    let owner = create(&mut b).expect("a VER0-sized struct is accepted");
    assert_eq!(
        owner_rekeys_after(&owner, 6),
        0,
        "bytes past the caller's size were read"
    );
}

#[test]
fn the_current_struct_is_read_whole() {
    // The control of the test above: the same bytes, with the size covering them.
    let mut b = userspace_opts(SIPC_OPTIONS_SIZE_VER1);
    b.put_u64(OFF_REKEY_RECORDS, 1);
    let owner = create(&mut b).expect("create");
    assert!(
        owner_rekeys_after(&owner, 6) >= 5,
        "rekey_records = 1 ratchets per record"
    );
}

#[test]
fn a_newer_larger_struct_with_a_zero_tail_is_accepted() {
    let mut b = userspace_opts(SIPC_OPTIONS_SIZE_VER1 + 24);
    b.put_u32(0, (SIPC_OPTIONS_SIZE_VER1 + 24) as u32);
    assert!(create(&mut b).is_ok());
}

#[test]
fn a_newer_larger_struct_with_a_nonzero_tail_is_e2big() {
    let mut b = userspace_opts(SIPC_OPTIONS_SIZE_VER1 + 24);
    b.put_u32(0, (SIPC_OPTIONS_SIZE_VER1 + 24) as u32);
    b.bytes_mut()[SIPC_OPTIONS_SIZE_VER1 + 23] = 1;
    assert_eq!(create(&mut b).err(), Some(-libc::E2BIG));
}

#[test]
fn a_size_below_the_first_version_is_einval() {
    let mut b = userspace_opts(SIPC_OPTIONS_SIZE_VER1);
    b.put_u32(0, SIPC_OPTIONS_SIZE_VER0 as u32 - 1);
    assert_eq!(create(&mut b).err(), Some(-libc::EINVAL));
}

#[test]
fn a_size_over_a_page_is_e2big_without_reading_it() {
    let mut b = userspace_opts(SIPC_OPTIONS_SIZE_VER1);
    // Far past the buffer: refused on the size alone.
    b.put_u32(0, 1 << 30);
    assert_eq!(create(&mut b).err(), Some(-libc::E2BIG));
}

#[test]
fn sipc_options_init_writes_only_the_first_versions_bytes() {
    let mut b = Buf::new(SIPC_OPTIONS_SIZE_VER1, 0xee);
    // SAFETY: VER1 >= VER0 writable bytes.
    unsafe { sipc_options_init(b.ptr()) };
    assert_eq!(b.u32_at(0), SIPC_OPTIONS_SIZE_VER0 as u32);
    assert!(b.bytes()[SIPC_OPTIONS_SIZE_VER0..]
        .iter()
        .all(|&x| x == 0xee));
    b.put_u32(OFF_BACKEND, SIPC_BACKEND_USERSPACE);
    assert!(
        create(&mut b).is_ok(),
        "what it wrote is a valid VER0 struct"
    );
}

#[test]
fn sipc_options_init_sized_zeroes_a_newer_callers_fields_and_rejects_short_sizes() {
    let mut b = Buf::new(SIPC_OPTIONS_SIZE_VER1 + 32, 0xee);
    // SAFETY: VER1 + 32 writable bytes.
    assert_eq!(
        unsafe { sipc_options_init_sized(b.ptr(), SIPC_OPTIONS_SIZE_VER1 + 32) },
        0
    );
    assert_eq!(b.u32_at(0), (SIPC_OPTIONS_SIZE_VER1 + 32) as u32);
    assert!(b.bytes()[SIPC_OPTIONS_SIZE_VER0..].iter().all(|&x| x == 0));
    b.put_u32(OFF_BACKEND, SIPC_BACKEND_USERSPACE);
    assert!(create(&mut b).is_ok());
    let mut short = Buf::new(SIPC_OPTIONS_SIZE_VER1, 0xee);
    // SAFETY: a size below VER0 writes nothing.
    assert_eq!(
        unsafe { sipc_options_init_sized(short.ptr(), 8) },
        -libc::EINVAL
    );
    assert!(short.bytes().iter().all(|&x| x == 0xee));
    // SAFETY: NULL is refused.
    assert_eq!(
        unsafe { sipc_options_init_sized(std::ptr::null_mut(), 200) },
        -libc::EINVAL
    );
}
