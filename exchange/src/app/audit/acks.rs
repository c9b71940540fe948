//! Gateways' acks files: one line per first acknowledgement,
//! `session client_id order_id seq epoch` (see `ARCHITECTURE.md`).

use crate::types::*;

/// One line of a gateway's acks file: `session client_id order_id seq epoch`.
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
