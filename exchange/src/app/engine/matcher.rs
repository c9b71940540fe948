//! The matcher: stamps each input (seq, epoch, time) and applies it. No I/O.

use crate::events::{Input, Outputs, SequencedInput};
use crate::matching::{ApplyError, Engine};
use crate::types::{Epoch, Timestamp};

/// An engine behind its sequencer.
pub struct Matcher {
    engine: Engine,
    epoch: Epoch,
    last_time: Timestamp,
}

impl Matcher {
    /// Sequences onto `engine` (already recovered) in `epoch`; times never
    /// go below `last_time` (the last recovered record's).
    pub fn new(engine: Engine, epoch: Epoch, last_time: Timestamp) -> Matcher {
        Matcher { engine, epoch, last_time }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Stamps `input` with the next sequence number, the epoch and
    /// `max(last time, now_ns)`, and applies it.
    pub fn sequence(&mut self, input: Input, now_ns: Timestamp) -> Result<(SequencedInput, Outputs), ApplyError> {
        self.last_time = self.last_time.max(now_ns);
        let rec = SequencedInput { seq: self.engine.next_seq(), epoch: self.epoch, time: self.last_time, input };
        let mut out = Outputs::default();
        self.engine.apply_into(&rec, &mut out)?;
        Ok((rec, out))
    }
}

/// Nanoseconds since the Unix epoch, by the system clock.
pub fn now_ns() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as Timestamp)
}
