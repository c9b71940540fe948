//! The state directory: this host's identity key, the peers it remembers,
//! the address `weavers expose` gave it, and the DNS entries it added. Files are written whole to a
//! temporary name and renamed, so a crash never leaves half a file.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use weavers_proto::ipam::{Allocator, Ring};
use weavers_proto::keys::{PublicKey, StaticKeypair};

/// The Ed25519 seed (base64) from which the host's signing key and its
/// Noise (X25519) key derive. Before signed records, `identity.key` held
/// an X25519 key, which cannot sign: a host with only that one gets a new
/// identity (its peers learn it through their `--peer` addresses).
const IDENTITY: &str = "identity.ed25519";
const PEERS: &str = "peers.json";
const IPAM: &str = "ipam.json";

/// What `ipam.json` holds.
#[derive(Debug, Deserialize)]
pub struct IpamFile {
    pub ring: Ring,
    pub alloc: Allocator,
}
const DNS: &str = "dns.json";
/// Revocations from the network's authority (network-authority mode).
const REVOCATIONS: &str = "revocations.json";

/// A host remembered from an earlier run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPeer {
    pub public_key: String,
    pub endpoint: String,
    pub name: String,
    /// The highest handshake timestamp accepted from it, restored so that
    /// an IK initiation captured before a restart is still refused (0 in
    /// files from before this field).
    #[serde(default)]
    pub last_handshake: u64,
}

/// What `peers.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersFile {
    /// Addresses given to `weavers peer add`, as typed.
    #[serde(default)]
    pub added: Vec<String>,
    /// Hosts met before, reconnected at start.
    #[serde(default)]
    pub known: Vec<KnownPeer>,
    /// The address `weavers expose` gave this host, e.g. `10.32.0.1/12`.
    #[serde(default)]
    pub exposed: Option<String>,
}

/// What `dns.json` holds: the DNS entries this host added (other hosts'
/// come back by gossip).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsFile {
    #[serde(default)]
    pub entries: Vec<weavers_proto::dns::DnsEntry>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Opens (creating, mode 0700) the directory.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating state dir {}", dir.display()))?;
        Ok(StateDir { dir: dir.to_path_buf() })
    }

    /// Loads the identity key, making one (mode 0600) on first start.
    pub fn identity(&self) -> anyhow::Result<StaticKeypair> {
        let path = self.dir.join(IDENTITY);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mode = std::fs::metadata(&path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    bail!("{} is readable by others (mode {:o}); chmod 600 it", path.display(), mode & 0o777);
                }
                let seed = PublicKey::from_base64(text.trim())
                    .with_context(|| format!("{} does not hold a base64 key", path.display()))?;
                Ok(StaticKeypair::from_seed(seed.0))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kp = StaticKeypair::generate();
                self.write(IDENTITY, format!("{}\n", PublicKey(kp.seed()).to_base64()).as_bytes())?;
                tracing::info!(public_key = %kp.public, "made a new identity key");
                Ok(kp)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Loads `peers.json` (empty if absent).
    pub fn peers(&self) -> anyhow::Result<PeersFile> {
        let path = self.dir.join(PEERS);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parsing {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PeersFile::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Saves `peers.json`.
    pub fn save_peers(&self, p: &PeersFile) -> anyhow::Result<()> {
        self.write(PEERS, &serde_json::to_vec_pretty(p)?)
    }

    /// Loads `dns.json` (empty if absent).
    pub fn dns(&self) -> anyhow::Result<DnsFile> {
        let path = self.dir.join(DNS);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parsing {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DnsFile::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Saves `dns.json`.
    pub fn save_dns(&self, d: &DnsFile) -> anyhow::Result<()> {
        self.write(DNS, &serde_json::to_vec_pretty(d)?)
    }

    /// Loads `revocations.json`: the binary forms, base64 (empty if absent).
    pub fn revocations(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        use base64::Engine as _;
        let path = self.dir.join(REVOCATIONS);
        let list: Vec<String> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parsing {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        list.iter()
            .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing {}", path.display()))
    }

    /// Saves `revocations.json` (synced: a revocation taken is kept).
    pub fn save_revocations(&self, list: &[Vec<u8>]) -> anyhow::Result<()> {
        use base64::Engine as _;
        let v: Vec<String> = list.iter().map(|r| base64::engine::general_purpose::STANDARD.encode(r)).collect();
        self.write(REVOCATIONS, &serde_json::to_vec_pretty(&v)?)
    }

    /// Loads `ipam.json`: the ring and this host's allocations (None if absent).
    pub fn ipam(&self) -> anyhow::Result<Option<IpamFile>> {
        let path = self.dir.join(IPAM);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).with_context(|| format!("parsing {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Saves `ipam.json` (synced before it returns: an allocation is
    /// answered, and space given away, only once it is on disk).
    pub fn save_ipam(&self, ring: &Ring, alloc: &Allocator) -> anyhow::Result<()> {
        #[derive(Serialize)]
        struct Out<'a> {
            ring: &'a Ring,
            alloc: &'a Allocator,
        }
        self.write(IPAM, &serde_json::to_vec(&Out { ring, alloc })?)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_made_once_private_and_kept() {
        let dir = std::env::temp_dir().join(format!("weavers-state-test-{}", std::process::id()));
        let s = StateDir::open(&dir).unwrap();
        let a = s.identity().unwrap();
        let b = s.identity().unwrap();
        assert_eq!(a.public, b.public);
        let mode = std::fs::metadata(dir.join(IDENTITY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(dir.join(IDENTITY), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(s.identity().is_err(), "a key others can read is refused");
        let known = KnownPeer {
            public_key: a.public.to_base64(),
            endpoint: "10.0.0.2:6783".into(),
            name: "h2".into(),
            last_handshake: 1_700_000_000_123,
        };
        let p = PeersFile {
            added: vec!["10.0.0.1".into()],
            known: vec![known.clone()],
            exposed: Some("10.32.0.1/12".into()),
        };
        s.save_peers(&p).unwrap();
        assert_eq!(s.peers().unwrap(), p);
        // A file from before handshake timestamps were kept still loads.
        let old = format!(
            r#"{{"known": [{{"public_key": "{}", "endpoint": "10.0.0.2:6783", "name": "h2"}}]}}"#,
            known.public_key
        );
        std::fs::write(dir.join(PEERS), old).unwrap();
        assert_eq!(s.peers().unwrap().known, vec![KnownPeer { last_handshake: 0, ..known }]);
        assert_eq!(s.dns().unwrap(), DnsFile::default());
        let d = DnsFile {
            entries: vec![weavers_proto::dns::DnsEntry {
                name: "web".into(),
                addr: "10.0.0.1".parse().unwrap(),
                owner: Some("c1".into()),
                since: 7,
            }],
        };
        s.save_dns(&d).unwrap();
        assert_eq!(s.dns().unwrap(), d);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
