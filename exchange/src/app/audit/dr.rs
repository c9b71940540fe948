//! The audit's disaster-recovery checks, pure: failovers and the recovery
//! time from the journal's epochs and times, and engines' state digests
//! (`aex engine --checkpoints`) against the replay's at the same sequence
//! numbers, so a primary and its standby are shown to agree.

use super::findings::Findings;
use crate::app::engine::checkpoint::Checkpoint;
use crate::events::{Outputs, SequencedInput};
use crate::matching::{Engine, EngineConfig};
use crate::types::{Seq, SymbolIndex, Timestamp};
use std::collections::BTreeMap;

/// Epoch changes in `records` (a restart or a failover each).
pub fn failovers(records: &[SequencedInput]) -> u64 {
    records.windows(2).filter(|w| w[1].epoch != w[0].epoch).count() as u64
}

/// Milliseconds from `failed_at` (Unix ns) to the sequencing time of the
/// first input of the first epoch that began after the failure; `None`
/// when no epoch began after it.
pub fn rto_ms(records: &[SequencedInput], failed_at: Timestamp) -> Option<u64> {
    // The epoch in force at the failure: that of the last input before it.
    let before = records.iter().take_while(|r| r.time <= failed_at).last().map_or(0, |r| r.epoch);
    let first = records.iter().find(|r| r.epoch > before && r.time >= failed_at)?;
    Some((first.time - failed_at) / 1_000_000)
}

/// One checkpoints file.
#[derive(Clone, Debug)]
pub struct CheckpointFile {
    /// Its name, for messages.
    pub name: String,
    /// Its lines.
    pub lines: Vec<Checkpoint>,
    /// Lines that did not parse.
    pub bad_lines: Vec<String>,
}

/// Compares every checkpoint with the replay's digest at its sequence
/// number (and so with each other): counts into `rep`. A checkpoint whose
/// epoch is not that of the journal's record at its sequence number (or
/// past the journal's end) describes an engine's un-replicated tail — a
/// primary that failed or was fenced before DR held it — and is counted as
/// superseded, not compared (one primary per epoch, so same seq and epoch
/// means the same history).
pub fn check_checkpoints(
    symbols: &[SymbolIndex],
    records: &[SequencedInput],
    files: &[CheckpointFile],
    rep: &mut Findings,
) {
    let mut wanted: BTreeMap<Seq, Vec<(&str, &Checkpoint)>> = BTreeMap::new();
    for f in files {
        for e in &f.bad_lines {
            rep.error(format!("{}: {e}", f.name));
        }
        for c in &f.lines {
            let epoch = records.get((c.seq as usize).wrapping_sub(1)).map(|r| r.epoch);
            if epoch == Some(c.epoch) {
                wanted.entry(c.seq).or_default().push((&f.name, c));
            } else {
                rep.checkpoints_superseded += 1;
            }
        }
    }
    let mut engine = Engine::new(symbols.iter().copied(), EngineConfig::default());
    let mut out = Outputs::default();
    let mut next = wanted.iter().peekable();
    for rec in records {
        if next.peek().is_none() {
            break;
        }
        if engine.apply_into(rec, &mut out).is_err() {
            break;
        }
        while let Some((&seq, cps)) = next.peek() {
            if seq > rec.seq {
                break;
            }
            let digest = (seq == rec.seq).then(|| engine.digest().to_string());
            for (name, c) in cps.iter() {
                rep.checkpoints_checked += 1;
                match &digest {
                    Some(d) if *d == c.digest => {}
                    Some(_) => {
                        rep.checkpoint_mismatches += 1;
                        rep.error(format!("{name}: state at seq {seq} (epoch {}) differs from the replay's", c.epoch));
                    }
                    None => unreachable!("checkpoints are visited in sequence order"),
                }
            }
            next.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::engine::checkpoint;
    use crate::events::Input;

    fn rec(seq: u64, epoch: u32, time: u64) -> SequencedInput {
        SequencedInput { seq, epoch, time, input: Input::EndOfDay }
    }

    /// An ack given by an engine of an older epoch than the journal's record
    /// at that seq (a fenced primary's un-replicated record) is lost; a
    /// repeat ack from a later epoch is not.
    #[test]
    fn acks_from_an_older_epoch_than_the_record_are_lost() {
        use crate::app::audit::check::{audit, AckFile};
        use crate::events::{NewOrder, Response};
        use crate::types::{OrderType, Side, TimeInForce};
        let o = |client_id| {
            Input::Enter(NewOrder {
                session: 1 << 24 | 1 << 12 | 1,
                client_id,
                symbol: 1,
                side: Side::Buy,
                price: 100,
                qty: 1,
                kind: OrderType::Limit,
                tif: TimeInForce::Day,
            })
        };
        let records = [
            SequencedInput { seq: 1, epoch: 1, time: 1, input: o(1) },
            SequencedInput { seq: 2, epoch: 2, time: 2, input: o(2) },
        ];
        let mut e = Engine::new([1], EngineConfig::default());
        let ids: Vec<u64> = records
            .iter()
            .map(|r| match e.apply(*r).unwrap().responses[0] {
                Response::Accepted(a) => a.order_id,
                ref other => panic!("{other:?}"),
            })
            .collect();
        let s = 1 << 24 | 1 << 12 | 1;
        let text = format!("{s} 1 {} 1 2\n{s} 2 {} 2 1\n", ids[0], ids[1]);
        let acks = [AckFile::parse("gw1", &text)];
        let rep = audit(&[1], &records, false, None, &acks);
        assert_eq!((rep.acks_checked, rep.rpo_orders), (2, 1), "{:?}", rep.errors);
    }

    #[test]
    fn failovers_and_rto() {
        let r = [rec(1, 1, 1_000_000_000), rec(2, 1, 2_000_000_000), rec(3, 2, 3_500_000_000), rec(4, 3, 9e9 as u64)];
        assert_eq!(failovers(&r), 2);
        assert_eq!(rto_ms(&r, 2_100_000_000), Some(1400));
        assert_eq!(rto_ms(&r, 9_500_000_000), None);
    }

    #[test]
    fn checkpoints_agree_or_not() {
        let records: Vec<_> = (1..=4).map(|s| rec(s, 1, s)).collect();
        let mut e = Engine::new([1], EngineConfig::default());
        let mut good = Vec::new();
        for r in &records {
            e.apply(*r).unwrap();
            good.push(Checkpoint { seq: r.seq, epoch: 1, digest: e.digest().to_string() });
        }
        let (bad, _) =
            checkpoint::parse(&format!("2 1 {}\n9 1 {}\n3 2 {}", "00".repeat(32), "00".repeat(32), "00".repeat(32)));
        let files = [
            CheckpointFile { name: "primary".into(), lines: good.clone(), bad_lines: vec![] },
            CheckpointFile { name: "standby".into(), lines: good[1..].to_vec(), bad_lines: vec![] },
            CheckpointFile { name: "bad".into(), lines: bad, bad_lines: vec![] },
        ];
        let mut rep = Findings::default();
        check_checkpoints(&[1], &records, &files[..2], &mut rep);
        assert_eq!((rep.checkpoints_checked, rep.checkpoint_mismatches, rep.error_count), (7, 0, 0));
        check_checkpoints(&[1], &records, &files[2..], &mut rep);
        assert_eq!((rep.checkpoint_mismatches, rep.checkpoints_superseded), (1, 2));
    }
}
