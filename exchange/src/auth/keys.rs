//! The deployment's secrets: root keys in a key file, and the per-stream
//! keys derived from them.
//!
//! A key file holds one root key a line, `NAME HEX` (32 bytes as 64 hex
//! digits; `#` starts a comment):
//!
//! - `md`: market data, shared by the engines and every market-data
//!   consumer (record, view);
//! - `gw.N`: gateway N's, shared by that gateway and the engines only
//!   (its orders streams, the engines' reports to it);
//! - `dr`: replication and fencing, shared by an engine and its DR site.
//!
//! Each process is given the file with the keys it needs and no others
//! (`aex keys` writes one per role); the files are mode 0600 and a file
//! readable by group or others is refused. Every stream then has a key of
//! its own ([`StreamKey`]), derived from its root key and its session name,
//! so no key serves two streams.

use super::tag::TagKey;
use super::KEY_LEN;
use crate::wire::mold::Session;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2sMac256;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use thiserror::Error;

/// Domain separation of the stream keys.
const STREAM_LABEL: &[u8] = b"aex stream key v1\0";

/// Why a key file could not be used.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file may be read by other users.
    #[error("{path}: readable by group or others (mode {mode:o}); keys must be 0600")]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A line is not `NAME HEX`.
    #[error("line {line}: {why}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A key the process needs is not in the file.
    #[error("no `{0}` key in the key file")]
    Missing(String),
}

/// A 32-byte root secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RootKey(pub(crate) [u8; KEY_LEN]);

impl RootKey {
    /// A fresh random key (the operating system's generator).
    pub fn random() -> RootKey {
        let mut k = [0u8; KEY_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
        RootKey(k)
    }

    /// A key from its bytes (tests, key files).
    pub fn from_bytes(b: [u8; KEY_LEN]) -> RootKey {
        RootKey(b)
    }

    /// A 32-byte key derived from this one for `label` (keyed BLAKE2s-256).
    pub(crate) fn derive(&self, parts: &[&[u8]]) -> [u8; KEY_LEN] {
        let mut m = <Blake2sMac256 as KeyInit>::new_from_slice(&self.0).expect("a 32-byte key");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(..)")
    }
}

/// The key of one stream: an HMAC-SHA256 key whose states are prepared
/// once and copied for every tag (no allocation).
#[derive(Clone)]
pub struct StreamKey {
    pub(crate) key: TagKey,
}

impl StreamKey {
    /// The key of the stream `kind`/`session` under `root` (`kind`: what
    /// the stream carries, so that one session name never has two uses).
    pub fn derive(root: &RootKey, kind: StreamKind, session: &Session) -> StreamKey {
        let k = root.derive(&[STREAM_LABEL, kind.label(), &session.0]);
        StreamKey::from_secret(&k)
    }

    /// A key made directly from 32 secret bytes.
    pub(crate) fn from_secret(k: &[u8; KEY_LEN]) -> StreamKey {
        StreamKey { key: TagKey::new(k) }
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamKey(..)")
    }
}

/// What a stream carries (part of its key's derivation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// A gateway's orders for one symbol (`gNNN.SSS`; root `gw.N`).
    Orders,
    /// An engine's reports to one gateway (`r.NAME`; root `gw.N`).
    Reports,
    /// A symbol's market data (`md.SSS`; root `md`).
    MarketData,
}

impl StreamKind {
    fn label(self) -> &'static [u8] {
        match self {
            StreamKind::Orders => b"orders\0",
            StreamKind::Reports => b"reports\0",
            StreamKind::MarketData => b"md\0",
        }
    }
}

/// The root keys a process holds.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    md: Option<RootKey>,
    gateways: BTreeMap<u8, RootKey>,
    dr: Option<RootKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({})", self.names().join(" "))
    }
}

fn unhex(s: &str) -> Option<[u8; KEY_LEN]> {
    if s.len() != 2 * KEY_LEN || !s.is_ascii() {
        return None;
    }
    let mut k = [0u8; KEY_LEN];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(k)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Keyring {
    /// A fresh keyring: `md`, `dr` and `gw.N` for every gateway given.
    pub fn generate(gateways: impl IntoIterator<Item = u8>) -> Keyring {
        Keyring {
            md: Some(RootKey::random()),
            gateways: gateways.into_iter().map(|g| (g, RootKey::random())).collect(),
            dr: Some(RootKey::random()),
        }
    }

    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<Keyring, KeyError> {
        let mut k = Keyring::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let syntax = |why: &str| KeyError::Syntax { line: n + 1, why: why.to_string() };
            let mut f = line.split_whitespace();
            let (Some(name), Some(value), None) = (f.next(), f.next(), f.next()) else {
                return Err(syntax("want `NAME HEX`"));
            };
            let key = RootKey(unhex(value).ok_or_else(|| syntax("the key is not 64 hex digits"))?);
            let slot = match name {
                "md" => &mut k.md,
                "dr" => &mut k.dr,
                _ => {
                    let id = name
                        .strip_prefix("gw.")
                        .and_then(|d| d.parse::<u8>().ok())
                        .filter(|&g| g > 0)
                        .ok_or_else(|| syntax("the name is not md, dr or gw.N (N 1..=255)"))?;
                    if k.gateways.insert(id, key).is_some() {
                        return Err(syntax("a key given twice"));
                    }
                    continue;
                }
            };
            if slot.replace(key).is_some() {
                return Err(syntax("a key given twice"));
            }
        }
        Ok(k)
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<Keyring, KeyError> {
        let text = read_private(path)?;
        Keyring::parse(&text).map_err(|e| match e {
            KeyError::Syntax { line, why } => KeyError::Syntax { line, why: format!("{}: {why}", path.display()) },
            e => e,
        })
    }

    /// The key file's text.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# AEX keys (aex keys): NAME HEX. Secret: keep this file mode 0600.\n");
        if let Some(k) = &self.md {
            s += &format!("md {}\n", hex(&k.0));
        }
        for (g, k) in &self.gateways {
            s += &format!("gw.{g} {}\n", hex(&k.0));
        }
        if let Some(k) = &self.dr {
            s += &format!("dr {}\n", hex(&k.0));
        }
        s
    }

    /// Writes a new key file, mode 0600 from its creation; an existing
    /// file is not overwritten.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        write_private(path, &self.to_text())
    }

    /// The names of the keys held (`md`, `gw.1`, `dr`).
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.md.is_some() {
            v.push("md".to_string());
        }
        v.extend(self.gateways.keys().map(|g| format!("gw.{g}")));
        if self.dr.is_some() {
            v.push("dr".to_string());
        }
        v
    }

    /// Only the market-data key (what a consumer gets).
    pub fn market_data_only(&self) -> Keyring {
        Keyring { md: self.md.clone(), ..Keyring::default() }
    }

    /// Only the replication key (what a DR journal gets).
    pub fn dr_only(&self) -> Keyring {
        Keyring { dr: self.dr.clone(), ..Keyring::default() }
    }

    /// Only gateway `id`'s key (what that gateway gets).
    pub fn gateway_only(&self, id: u8) -> Keyring {
        let gateways = self.gateways.get(&id).map(|k| (id, k.clone())).into_iter().collect();
        Keyring { gateways, ..Keyring::default() }
    }

    /// Adds (or replaces) a gateway's key.
    pub fn set_gateway(&mut self, id: u8, key: RootKey) {
        self.gateways.insert(id, key);
    }

    /// The market-data root key.
    pub fn md(&self) -> Result<&RootKey, KeyError> {
        self.md.as_ref().ok_or_else(|| KeyError::Missing("md".into()))
    }

    /// The replication root key.
    pub fn dr(&self) -> Result<&RootKey, KeyError> {
        self.dr.as_ref().ok_or_else(|| KeyError::Missing("dr".into()))
    }

    /// Gateway `id`'s root key, if held.
    pub fn gateway(&self, id: u8) -> Option<&RootKey> {
        self.gateways.get(&id)
    }

    /// The gateways whose keys are held.
    pub fn gateway_ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.gateways.keys().copied()
    }
}

/// Reads a secret file (keys, logins, passwords), refusing one that group
/// or others may read.
pub fn read_private(path: &Path) -> Result<String, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let io = |source| KeyError::Io { path: shown.clone(), source };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed { path: shown, mode: mode & 0o7777 });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// Writes a new secret file, mode 0600 from its creation; an existing file
/// is not overwritten.
pub fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_hostile_lines_are_refused() {
        let k = Keyring::generate([1, 2]);
        assert_eq!(k.names(), ["md", "gw.1", "gw.2", "dr"]);
        let back = Keyring::parse(&k.to_text()).unwrap();
        assert_eq!(back, k);
        assert!(!format!("{k:?} {:?}", k.md().unwrap()).contains(&hex(&k.md().unwrap().0)), "never printed");
        let key = "ab".repeat(32);
        for bad in [
            "md".to_string(),
            "md 00".to_string(),
            format!("md {}", "zz".repeat(32)),
            format!("gw.0 {key}"),
            format!("gw.x {key}"),
            format!("gw.256 {key}"),
            format!("other {key}"),
            format!("md {key} extra"),
        ] {
            assert!(matches!(Keyring::parse(&bad), Err(KeyError::Syntax { line: 1, .. })), "{bad}");
        }
        assert!(Keyring::parse(&format!("# comment\n\nmd {key} # trailing\n")).unwrap().md().is_ok());
        let twice = format!("gw.1 {}\ngw.1 {}\n", "11".repeat(32), "22".repeat(32));
        assert!(Keyring::parse(&twice).is_err());
        let one = k.gateway_only(2);
        assert_eq!(one.names(), ["gw.2"]);
        assert!(one.md().is_err() && one.dr().is_err() && one.gateway(1).is_none());
        assert_eq!(k.market_data_only().names(), ["md"]);
    }

    #[test]
    fn stream_keys_differ_per_stream_and_kind() {
        let root = RootKey::from_bytes([7; KEY_LEN]);
        let s1 = Session::new("g001.001").unwrap();
        let s2 = Session::new("g001.002").unwrap();
        let tag = |k: &StreamKey| k.key.tag(&[b"x"]);
        let a = tag(&StreamKey::derive(&root, StreamKind::Orders, &s1));
        assert_eq!(a, tag(&StreamKey::derive(&root, StreamKind::Orders, &s1)), "deterministic");
        assert_ne!(a, tag(&StreamKey::derive(&root, StreamKind::Orders, &s2)));
        assert_ne!(a, tag(&StreamKey::derive(&root, StreamKind::Reports, &s1)));
        assert_ne!(a, tag(&StreamKey::derive(&RootKey::from_bytes([8; KEY_LEN]), StreamKind::Orders, &s1)));
    }

    #[test]
    fn load_refuses_an_exposed_file_and_write_new_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("aex-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("all.keys");
        let k = Keyring::generate([3]);
        k.write_new(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Keyring::load(&p).unwrap(), k);
        assert!(matches!(Keyring::generate([]).write_new(&p), Err(KeyError::Io { .. })), "not overwritten");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Keyring::load(&p), Err(KeyError::Exposed { mode: 0o644, .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
