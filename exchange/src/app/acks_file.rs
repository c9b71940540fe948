//! The acknowledgements file a gateway writes (`aex gateway --acks FILE`)
//! and `aex audit --acks FILE` checks against the journal: one line per
//! first acknowledgement of an order, `session client_id order_id seq
//! epoch`, decimal, separated by spaces (see `ARCHITECTURE.md`). The
//! writer is [`AckLog`] (lines from [`line()`]); the reader is [`AckFile`].

use crate::events::Ack;
use crate::types::{ClientOrderId, Epoch, OrderId, Seq, SessionId};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// One line of the file (with its newline).
pub fn line(session: SessionId, ack: &Ack, epoch: Epoch) -> String {
    format!("{session} {} {} {} {epoch}\n", ack.order.client_id, ack.order_id, ack.seq)
}

/// The file being written, buffered; the owner flushes it on a timer and at exit.
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

/// One line of an acks file: `session client_id order_id seq epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckLine {
    /// The customer session.
    pub session: SessionId,
    /// The customer's order id.
    pub client_id: ClientOrderId,
    /// The exchange order id acknowledged.
    pub order_id: OrderId,
    /// The sequence number of the accepting input.
    pub seq: Seq,
    /// The epoch of the report.
    pub epoch: Epoch,
}

impl AckLine {
    /// Parses one line (five decimal fields separated by whitespace).
    pub fn parse(line: &str) -> Result<AckLine, String> {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!("{line:?}: 5 fields expected, {} found", f.len()));
        }
        let bad = |what: &str| format!("{line:?}: bad {what}");
        Ok(AckLine {
            session: f[0].parse().map_err(|_| bad("session"))?,
            client_id: f[1].parse().map_err(|_| bad("client id"))?,
            order_id: f[2].parse().map_err(|_| bad("order id"))?,
            seq: f[3].parse().map_err(|_| bad("seq"))?,
            epoch: f[4].parse().map_err(|_| bad("epoch"))?,
        })
    }
}

/// One acks file's lines (or the errors reading them).
#[derive(Clone, Debug, Default)]
pub struct AckFile {
    /// A name for messages (the path).
    pub name: String,
    /// Lines that parsed.
    pub lines: Vec<AckLine>,
    /// Lines that did not (each an error).
    pub bad_lines: Vec<String>,
}

impl AckFile {
    /// Parses a whole acks file; blank lines are skipped.
    pub fn parse(name: &str, text: &str) -> AckFile {
        let mut f = AckFile { name: name.to_string(), ..AckFile::default() };
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            match AckLine::parse(line) {
                Ok(l) => f.lines.push(l),
                Err(e) => f.bad_lines.push(format!("{name}:{}: {e}", i + 1)),
            }
        }
        f
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
        let read = AckFile::parse("acks", &line(0x0100_1001, &ack, 3));
        let want = AckLine { session: 0x0100_1001, client_id: 42, order_id: 1234, seq: 99, epoch: 3 };
        assert_eq!((read.lines, read.bad_lines), (vec![want], vec![]), "what the gateway writes, the audit reads");
        let bad = AckFile::parse("acks", "1 2 3 4\n\n1 2 x 4 5\n");
        assert_eq!(bad.bad_lines.len(), 2, "{:?}", bad.bad_lines);
    }
}
