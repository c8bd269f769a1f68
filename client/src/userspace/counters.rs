//! Per-endpoint counters and their wire encoding for `sipc stats`.

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

    pub(super) fn to_wire(s: &Stats) -> Vec<u8> {
        let mut v = MAGIC_STATS_REPLY.to_vec();
        for x in [
            s.sealed_msgs,
            s.sealed_bytes,
            s.opened_msgs,
            s.opened_bytes,
            s.auth_failures,
            s.full_events,
            s.doorbells_signalled,
            s.doorbells_suppressed,
            s.rekeys,
            s.tx_fill as u64,
            s.rx_fill as u64,
            s.tx_epoch as u64,
            s.rx_epoch as u64,
        ] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    pub(super) fn from_wire(b: &[u8]) -> Option<Stats> {
        if b.len() != 8 + 13 * 8 || &b[..8] != MAGIC_STATS_REPLY {
            return None;
        }
        let f =
            |i: usize| u64::from_le_bytes(b[8 + i * 8..16 + i * 8].try_into().unwrap_or([0; 8]));
        Some(Stats {
            sealed_msgs: f(0),
            sealed_bytes: f(1),
            opened_msgs: f(2),
            opened_bytes: f(3),
            auth_failures: f(4),
            full_events: f(5),
            doorbells_signalled: f(6),
            doorbells_suppressed: f(7),
            rekeys: f(8),
            tx_fill: f(9) as u32,
            rx_fill: f(10) as u32,
            tx_epoch: f(11) as u32,
            rx_epoch: f(12) as u32,
        })
    }
}
