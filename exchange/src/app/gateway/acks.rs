//! The acknowledgements log (`--acks FILE`): one line per first
//! acknowledgement of an order, `session client_id order_id seq epoch`, for
//! `aex audit` to check against the journal.

use crate::events::Ack;
use crate::types::{Epoch, SessionId};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// One line of the log (with its newline).
pub fn line(session: SessionId, ack: &Ack, epoch: Epoch) -> String {
    format!("{session} {} {} {} {epoch}\n", ack.order.client_id, ack.order_id, ack.seq)
}

/// The log file, buffered; the owner flushes it on a timer and at exit.
#[derive(Debug)]
pub struct AckLog {
    out: BufWriter<File>,
    unflushed: bool,
}

impl AckLog {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> io::Result<AckLog> {
        let f = File::options().create(true).append(true).open(path)?;
        Ok(AckLog { out: BufWriter::with_capacity(1 << 16, f), unflushed: false })
    }

    /// Adds a line.
    pub fn write(&mut self, session: SessionId, ack: &Ack, epoch: Epoch) -> io::Result<()> {
        self.unflushed = true;
        self.out.write_all(line(session, ack, epoch).as_bytes())
    }

    /// Writes what is buffered to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.unflushed {
            self.out.flush()?;
            self.unflushed = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::NewOrder;
    use crate::types::*;

    #[test]
    fn line_format() {
        let order = NewOrder {
            session: 0x0100_1001,
            client_id: 42,
            symbol: 7,
            side: Side::Buy,
            price: 100,
            qty: 5,
            kind: OrderType::Limit,
            tif: TimeInForce::Day,
        };
        let ack = Ack { seq: 99, order_id: 1234, order };
        assert_eq!(line(0x0100_1001, &ack, 3), "16781313 42 1234 99 3\n");
    }
}
