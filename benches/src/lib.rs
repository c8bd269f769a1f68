//! secure-ipc-benches: helpers shared by the criterion benches in
//! `benches/` (run `cargo bench -p secure-ipc-benches --bench ring`).
#![warn(missing_docs)]

/// Waits politely in a spin loop: pause instructions first, then yield the
/// CPU (the machine may have fewer cores than busy threads).
#[derive(Default)]
pub struct Backoff {
    spins: u32,
}

impl Backoff {
    /// One step of waiting.
    #[inline]
    pub fn snooze(&mut self) {
        if self.spins < 64 {
            std::hint::spin_loop();
            self.spins += 1;
        } else {
            std::thread::yield_now();
        }
    }

    /// Progress was made: spin again next time.
    #[inline]
    pub fn reset(&mut self) {
        self.spins = 0;
    }
}
