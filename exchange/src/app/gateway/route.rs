//! What a gateway does with one engine report: fence stale epochs, pick the
//! order-entry messages for its own sessions, and tell first
//! acknowledgements (logged for audit) from the engine's repeats.

use crate::events::{Ack, CancelReason, RequestKind, Response};
use crate::types::{ClientOrderId, Epoch, SessionId};
use crate::wire::oe::{self, OeMessage};
use crate::wire::report::Report;

/// The highest epoch seen on one engine's report stream; reports from a
/// lower epoch come from a fenced (deposed) primary and are dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    highest: Option<Epoch>,
}

impl Fence {
    /// Whether a report of `epoch` passes (and raises the fence).
    pub fn admit(&mut self, epoch: Epoch) -> bool {
        match self.highest {
            Some(h) if epoch < h => false,
            _ => {
                self.highest = Some(epoch);
                true
            }
        }
    }

    /// The highest epoch admitted so far.
    pub fn highest(&self) -> Option<Epoch> {
        self.highest
    }
}

/// A request of a session that an outcome answers (so it is no longer resent).
pub type Answered = (SessionId, ClientOrderId, RequestKind);

/// What one report means for this gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routed {
    /// Messages for this gateway's sessions, in order.
    pub messages: Vec<(SessionId, OeMessage)>,
    /// The first acknowledgement of an order of this gateway, if it is one.
    pub first_ack: Option<(SessionId, Ack)>,
    /// Requests this report answers.
    pub answered: Vec<Answered>,
    /// Orders of this gateway's sessions that are done (nothing left).
    pub done: Vec<(SessionId, ClientOrderId)>,
}

/// Whether `session` belongs to gateway `gw`.
pub fn is_own(session: SessionId, gw: u8) -> bool {
    session >> 24 == u32::from(gw)
}

/// Routes a report for gateway `gw`.
pub fn route(rep: &Report, gw: u8) -> Routed {
    let mut r = Routed::default();
    if let Response::Accepted(ack) = rep.response {
        if is_own(ack.order.session, gw) && ack.seq == rep.seq {
            r.first_ack = Some((ack.order.session, ack));
        }
    }
    for (session, m) in oe::for_sessions(&rep.response, rep.time) {
        if !is_own(session, gw) {
            continue;
        }
        match m {
            OeMessage::Accepted { ack, .. } => {
                r.answered.push((session, ack.order.client_id, RequestKind::Enter));
            }
            OeMessage::Rejected { client_id, request, .. } => {
                r.answered.push((session, client_id, request));
                if request == RequestKind::Enter {
                    r.done.push((session, client_id));
                }
            }
            OeMessage::Cancelled { client_id, reason, leaves, .. } => {
                match reason {
                    CancelReason::User => r.answered.push((session, client_id, RequestKind::Cancel)),
                    CancelReason::Reduced => r.answered.push((session, client_id, RequestKind::Reduce)),
                    _ => {}
                }
                if leaves == 0 {
                    r.done.push((session, client_id));
                }
            }
            OeMessage::Executed(e) if e.leaves == 0 => r.done.push((session, e.client_id)),
            _ => {}
        }
        r.messages.push((session, m));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;
    use crate::types::*;

    fn order(session: SessionId, client_id: ClientOrderId) -> NewOrder {
        NewOrder {
            session,
            client_id,
            symbol: 1,
            side: Side::Buy,
            price: 100,
            qty: 10,
            kind: OrderType::Limit,
            tif: TimeInForce::Day,
        }
    }

    #[test]
    fn fencing() {
        let mut f = Fence::default();
        assert!(f.admit(2));
        assert!(f.admit(2));
        assert!(!f.admit(1));
        assert!(f.admit(3));
        assert!(!f.admit(2));
    }

    #[test]
    fn acks_first_and_repeated() {
        let s = 1 << 24 | 1 << 12 | 1;
        let ack = Ack { seq: 5, order_id: 9, order: order(s, 7) };
        let rep = Report { epoch: 1, seq: 5, time: 11, response: Response::Accepted(ack) };
        let r = route(&rep, 1);
        assert_eq!(r.first_ack, Some((s, ack)));
        assert_eq!(r.answered, vec![(s, 7, RequestKind::Enter)]);
        assert_eq!(r.messages.len(), 1);
        assert!(matches!(r.messages[0], (ss, OeMessage::Accepted { ack: a, time: 11 }) if ss == s && a.order_id == 9));
        // The engine's repeat of the same ack for a resend: delivered, not logged.
        let again = Report { seq: 8, ..rep };
        let r = route(&again, 1);
        assert_eq!(r.first_ack, None);
        assert_eq!(r.messages.len(), 1);
        // Another gateway's order: nothing for gateway 1.
        assert_eq!(route(&rep, 2), Routed::default());
    }

    #[test]
    fn execution_goes_to_own_parties_only() {
        let mine = 1 << 24 | 1;
        let theirs = 2 << 24 | 1;
        let e = Execution {
            match_id: 1,
            symbol: 1,
            price: 100,
            qty: 10,
            aggressor: Side::Buy,
            maker: Party { session: theirs, client_id: 1, order_id: 1, leaves: 5 },
            taker: Party { session: mine, client_id: 2, order_id: 2, leaves: 0 },
        };
        let rep = Report { epoch: 1, seq: 3, time: 4, response: Response::Executed(e) };
        let r = route(&rep, 1);
        assert_eq!(r.messages.len(), 1);
        assert!(matches!(r.messages[0], (s, OeMessage::Executed(x)) if s == mine && x.client_id == 2));
        assert_eq!(r.done, vec![(mine, 2)]);
        let r = route(&rep, 2);
        assert_eq!(r.messages.len(), 1);
        assert!(r.done.is_empty());
        // Both parties ours: two messages (maker first).
        let both = Report { response: Response::Executed(Execution { maker: e.taker, ..e }), ..rep };
        assert_eq!(route(&both, 1).messages.len(), 2);
    }

    #[test]
    fn rejects_and_cancels_answer_requests() {
        let s = 1 << 24 | 3;
        let rej = Reject {
            session: s,
            client_id: 4,
            symbol: 1,
            request: RequestKind::Cancel,
            reason: RejectReason::UnknownOrder,
        };
        let r = route(&Report { epoch: 1, seq: 1, time: 1, response: Response::Rejected(rej) }, 1);
        assert_eq!(r.answered, vec![(s, 4, RequestKind::Cancel)]);
        assert!(r.done.is_empty());
        let c = Cancelled {
            session: s,
            client_id: 4,
            order_id: 1,
            symbol: 1,
            qty: 3,
            leaves: 2,
            reason: CancelReason::Reduced,
        };
        let r = route(&Report { epoch: 1, seq: 2, time: 1, response: Response::Cancelled(c) }, 1);
        assert_eq!(r.answered, vec![(s, 4, RequestKind::Reduce)]);
        let c = Cancelled { leaves: 0, reason: CancelReason::User, ..c };
        let r = route(&Report { epoch: 1, seq: 3, time: 1, response: Response::Cancelled(c) }, 1);
        assert_eq!(r.answered, vec![(s, 4, RequestKind::Cancel)]);
        assert_eq!(r.done, vec![(s, 4)]);
    }
}
