//! Helpers for the loom models of the ring protocol (tests/ring_models.rs).
//!
//! The models run the production `secure-ipc-ring` code compiled with
//! `RUSTFLAGS="--cfg loom"`; outside that build this crate is empty. Run:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p secure-ipc-loom-tests --release
//! ```
#![warn(missing_docs)]

#[cfg(loom)]
mod model {
    use loom::sync::{Condvar, Mutex};

    /// An eventfd doorbell: `ring` adds one, `wait` blocks until the count is
    /// non-zero and resets it. A consumer blocked in `wait` that nobody rings
    /// is a deadlock, which loom reports: that is how a lost wake-up fails a
    /// model.
    #[derive(Default)]
    pub struct Bell {
        count: Mutex<u32>,
        cv: Condvar,
    }

    impl Bell {
        /// Signals the doorbell (eventfd write).
        pub fn ring(&self) {
            *self.count.lock().unwrap() += 1;
            self.cv.notify_one();
        }

        /// Blocks until signalled (eventfd read).
        pub fn wait(&self) {
            let mut c = self.count.lock().unwrap();
            while *c == 0 {
                c = self.cv.wait(c).unwrap();
            }
            *c = 0;
        }
    }

    /// `loom::model` with a preemption bound of 2 unless
    /// `LOOM_MAX_PREEMPTIONS` says otherwise (keeps the suite fast).
    pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        b.check(f);
    }

    /// Runs `f` as a model that must FAIL (loom panics: a causality
    /// violation, a deadlock, or a failed assertion). Returns the panic
    /// message so the test can print it.
    pub fn model_fails<F: Fn() + Sync + Send + 'static>(f: F) -> String {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model(f)));
        match r {
            Ok(()) => panic!("the weakened model passed: loom did not catch the weakening"),
            Err(p) => p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into()),
        }
    }
}

#[cfg(loom)]
pub use model::{model, model_fails, Bell};
