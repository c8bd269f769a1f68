//! Per-endpoint counters (their wire form for `sipc stats` is
//! [`StatsReply`]).

use super::*;

/// Counters of one endpoint, shared by its halves and the owner's listener.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) sealed_msgs: AtomicU64,
    pub(super) sealed_bytes: AtomicU64,
    pub(super) opened_msgs: AtomicU64,
    pub(super) opened_bytes: AtomicU64,
    pub(super) auth_failures: AtomicU64,
    pub(super) full_events: AtomicU64,
    pub(super) doorbells_signalled: AtomicU64,
    pub(super) doorbells_suppressed: AtomicU64,
    pub(super) rekeys: AtomicU64,
    pub(super) tx_epoch: AtomicU32,
    pub(super) rx_epoch: AtomicU32,
    /// The session's mapping and (outgoing, incoming) ring offsets, for the
    /// fill levels (read only when someone asks for stats).
    pub(super) rings: std::sync::OnceLock<(Arc<Mapping>, usize, usize)>,
}

impl Counters {
    pub(super) fn snapshot(&self) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let l32 = |a: &AtomicU32| a.load(Ordering::Relaxed);
        Stats {
            sealed_msgs: l(&self.sealed_msgs),
            sealed_bytes: l(&self.sealed_bytes),
            opened_msgs: l(&self.opened_msgs),
            opened_bytes: l(&self.opened_bytes),
            auth_failures: l(&self.auth_failures),
            full_events: l(&self.full_events),
            doorbells_signalled: l(&self.doorbells_signalled),
            doorbells_suppressed: l(&self.doorbells_suppressed),
            rekeys: l(&self.rekeys),
            tx_fill: self.rings.get().map_or(0, |(m, tx, _)| m.ring_fill(*tx)),
            rx_fill: self.rings.get().map_or(0, |(m, _, rx)| m.ring_fill(*rx)),
            tx_epoch: l32(&self.tx_epoch),
            rx_epoch: l32(&self.rx_epoch),
        }
    }
}
