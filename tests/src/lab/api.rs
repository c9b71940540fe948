//! The daemons' control API read directly: `GET` over the unix socket with
//! a small HTTP/1.1 client, no `weavers` process per call. `peer ls --json`
//! prints the body of `GET /v1/peers` as it is, so the two agree; polling
//! hundreds of hosts several times a second is cheap this way.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::Lab;

/// Time limit of one API call.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read.
const MAX_ANSWER: u64 = 64 << 20;

impl Lab {
    /// `GET path` on host `i`'s control API; its JSON body. An error for a
    /// daemon that does not answer, or answers other than 2xx.
    pub fn api_get(&self, i: usize, path: &str) -> Result<Value> {
        self.api_get_within(i, path, API_TIMEOUT)
    }

    /// [`Lab::api_get`] with a time limit of its own (a poller that must
    /// not wait 30 s for one busy daemon).
    pub fn api_get_within(&self, i: usize, path: &str, timeout: Duration) -> Result<Value> {
        let body = http_get(&self.socket(i), path, timeout).with_context(|| format!("GET {path} on h{i}"))?;
        serde_json::from_slice(&body).with_context(|| format!("GET {path} on h{i}: the answer is not JSON"))
    }

    /// Host `i`'s peers (`GET /v1/peers`, the rows of `peer ls --json`).
    pub fn api_peers(&self, i: usize) -> Result<Vec<Value>> {
        self.api_peers_within(i, API_TIMEOUT)
    }

    /// [`Lab::api_peers`] with a time limit of its own.
    pub fn api_peers_within(&self, i: usize, timeout: Duration) -> Result<Vec<Value>> {
        match self.api_get_within(i, "/v1/peers", timeout)? {
            Value::Array(v) => Ok(v),
            other => Err(anyhow!("GET /v1/peers on h{i} is not an array: {other}")),
        }
    }
}

/// One `GET` on a fresh connection to the unix socket `sock`; the body of
/// a 2xx answer.
pub fn http_get(sock: &Path, path: &str, timeout: Duration) -> Result<Vec<u8>> {
    let mut s = UnixStream::connect(sock).with_context(|| format!("connect to {}", sock.display()))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    match s.take(MAX_ANSWER).read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            bail!("no answer within {timeout:?}")
        }
        Err(e) => return Err(e).context("read the answer"),
    }
    let (status, body) = parse_response(&raw)?;
    if !(200..300).contains(&status) {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]).trim());
    }
    Ok(body)
}

/// The status and body of a whole HTTP/1.1 answer (read to the end of the
/// connection): `Content-Length` or chunked.
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow!("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).context("headers are not UTF-8")?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = Some(v.parse::<usize>().with_context(|| format!("content-length {v:?}"))?);
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            bail!("answer cut short: {} of {n} bytes", rest.len());
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, body))
}

/// The body of a chunked transfer encoding.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(|| anyhow!("chunk size line cut short"))?;
        let size_text = std::str::from_utf8(&rest[..eol])?.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            bail!("chunk cut short");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn content_length_and_chunked_answers_are_read() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]";
        assert_eq!(parse_response(plain).unwrap(), (200, b"[]".to_vec()));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (404, b"{\"a\":1}".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n[]").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
