//! The daemon's settings: flags, `WEAVERS_*` environment variables and an
//! optional TOML file (`--config`), in that order of precedence.

use crate::logging::{LogFormat, LogOptions};
use anyhow::{bail, Context};
use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use weavers_proto::keys;

/// weaversd: joins this host to an encrypted layer-2 overlay on which IP
/// multicast reaches only the hosts that listen.
///
/// It creates a Linux bridge (`--bridge`) with a TAP port, meets its peers
/// over UDP with Noise handshakes keyed by the network password and each
/// host's own key, and serves a control API on a root-only unix socket for
/// the `weavers` command. Every flag can also be set by a `WEAVERS_*`
/// environment variable or a key of the same name in the `--config` file.
#[derive(Debug, Parser)]
#[command(name = "weaversd", version)]
pub struct Flags {
    /// TOML file with any of the settings below (keys as the long flag
    /// names, with `_` for `-`; `peer` is a list). Flags and environment win.
    #[arg(long, env = "WEAVERS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the identity key, known peers, the exposed address and this
    /// host's DNS entries are kept
    /// [default: /var/lib/weavers]
    #[arg(long, env = "WEAVERS_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Control socket for `weavers` (root only) [default: /run/weavers/weavers.sock]
    #[arg(long, env = "WEAVERS_SOCKET")]
    pub socket: Option<PathBuf>,
    /// UDP address for the mesh [default: 0.0.0.0:6783]
    #[arg(long, env = "WEAVERS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// File holding the network password (all hosts of a network share it);
    /// or set WEAVERS_PASSWORD. Optional with --ca and --cert (given, both
    /// must hold)
    #[arg(long, env = "WEAVERS_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Network-authority mode: the authority's certificate (ca.crt from
    /// `weavers ca init`); peers must show a valid, unexpired, unrevoked
    /// certificate it signed, and its permissions apply. Needs --cert
    #[arg(long, env = "WEAVERS_CA", requires = "cert", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// This host's certificate (from `weavers ca sign`), for --ca. Read
    /// again every minute and on SIGHUP, so a renewed one takes over
    /// without a restart
    #[arg(long, env = "WEAVERS_CERT", requires = "ca", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The network's name: salts the key derived from the password, so
    /// every host of a network must give the same one (1 to 64 letters,
    /// digits, '-', '_' or '.') [default: weavers]
    #[arg(long, env = "WEAVERS_NETWORK")]
    pub network: Option<String>,
    /// Peer to join at start, HOST or HOST:PORT (repeatable; the
    /// environment variable takes a comma-separated list)
    #[arg(long, env = "WEAVERS_PEER", value_delimiter = ',')]
    pub peer: Vec<String>,
    /// This host's nickname in the mesh [default: the hostname]
    #[arg(long, env = "WEAVERS_NAME")]
    pub name: Option<String>,
    /// Name of the Linux bridge containers and the host attach to [default: weavers]
    #[arg(long, env = "WEAVERS_BRIDGE")]
    pub bridge: Option<String>,
    /// Range overlay addresses are given from [default: 10.32.0.0/12]
    #[arg(long, env = "WEAVERS_IPALLOC_RANGE")]
    pub ipalloc_range: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default)
    #[arg(long, env = "WEAVERS_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log lines as `text` or `json` (one JSON object a line) on stderr
    /// [default: text]
    #[arg(long, env = "WEAVERS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to log: error, warn, info, debug, trace, or tracing directives
    /// such as `info,weaversd=debug`. Without it, RUST_LOG is honoured, then
    /// the config file's log_level [default: info]
    #[arg(long, env = "WEAVERS_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Seconds between the IGMP/MLD general queries of this host's querier;
    /// a member that stops reporting is dropped after 2 intervals plus the
    /// response time [default: 125]
    #[arg(long, env = "WEAVERS_QUERY_INTERVAL")]
    pub query_interval: Option<u64>,
    /// Where the DNS server sends queries for names outside weavers.local
    /// (UDP), e.g. 192.0.2.53:53; without it they are refused
    #[arg(long, env = "WEAVERS_DNS_UPSTREAM")]
    pub dns_upstream: Option<SocketAddr>,
    /// Port of the DNS server on the bridge's overlay address (UDP and
    /// TCP); 0 turns it off [default: 53]
    #[arg(long, env = "WEAVERS_DNS_PORT")]
    pub dns_port: Option<u16>,
    /// Print this host's public key (making the identity in the state dir
    /// if there is none yet) and exit: what certificates bind and what
    /// `weavers peer ls` shows
    #[arg(long)]
    pub print_public_key: bool,
}

/// The state dir the flags and the `--config` file name, without reading
/// anything else (for `--print-public-key`, which needs no password).
pub fn state_dir(flags: &Flags) -> anyhow::Result<PathBuf> {
    if let Some(d) = &flags.state_dir {
        return Ok(d.clone());
    }
    let file: FileConfig = match &flags.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing config file {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    Ok(file.state_dir.unwrap_or_else(|| "/var/lib/weavers".into()))
}

/// The logging settings from the flags and the `--config` file (read
/// before anything else, so that what follows is logged as asked).
pub fn log_options(flags: &Flags) -> anyhow::Result<LogOptions> {
    let mut opts =
        LogOptions { format: flags.log_format.unwrap_or_default(), level: flags.log_level.clone(), file_level: None };
    if let Some(p) = &flags.config {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
        let file: FileConfig = toml::from_str(&text).with_context(|| format!("parsing config file {}", p.display()))?;
        opts.format = flags.log_format.or(file.log_format).unwrap_or_default();
        opts.file_level = file.log_level;
    }
    Ok(opts)
}

/// The `--config` file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    state_dir: Option<PathBuf>,
    socket: Option<PathBuf>,
    listen: Option<SocketAddr>,
    password_file: Option<PathBuf>,
    password: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    network: Option<String>,
    #[serde(default)]
    peer: Vec<String>,
    name: Option<String>,
    bridge: Option<String>,
    ipalloc_range: Option<String>,
    metrics_addr: Option<SocketAddr>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    query_interval: Option<u64>,
    dns_upstream: Option<SocketAddr>,
    dns_port: Option<u16>,
}

/// Settings after merging, with defaults filled in.
#[derive(Debug)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub listen: SocketAddr,
    /// The network password; `None` only in network-authority mode.
    pub password: Option<Vec<u8>>,
    /// Network-authority mode: the authority's certificate and this
    /// host's (`--ca`, `--cert`).
    pub authority: Option<(PathBuf, PathBuf)>,
    /// The network's name (`--network`), the salt of the network key.
    pub network: String,
    pub peers: Vec<String>,
    pub name: String,
    pub bridge: String,
    pub ipalloc_range: (std::net::IpAddr, u8),
    pub metrics_addr: Option<SocketAddr>,
    pub query_interval: std::time::Duration,
    pub dns_upstream: Option<SocketAddr>,
    pub dns_port: u16,
}

impl Settings {
    /// Merges flags (with environment) over the config file over defaults.
    pub fn load(flags: Flags) -> anyhow::Result<Settings> {
        let file: FileConfig = match &flags.config {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let authority = match (flags.ca.or(file.ca), flags.cert.or(file.cert)) {
            (Some(ca), Some(cert)) => Some((ca, cert)),
            (None, None) => None,
            _ => bail!("--ca and --cert go together: the authority's certificate and this host's"),
        };
        let password = if let Some(p) = flags.password_file.as_ref().or(file.password_file.as_ref()) {
            Some(crate::password::read_file(p)?)
        } else if let Ok(p) = std::env::var("WEAVERS_PASSWORD") {
            Some(p.into_bytes())
        } else {
            file.password.map(String::into_bytes)
        };
        match &password {
            None if authority.is_none() => bail!(
                "no network password: give --password-file FILE or set WEAVERS_PASSWORD (every host of the network \
                 must use the same one), or use a network authority (--ca, --cert)"
            ),
            Some(p) if p.trim_ascii().is_empty() => bail!("the network password is empty"),
            _ => {}
        }
        let network = flags.network.or(file.network).unwrap_or_else(|| keys::DEFAULT_NETWORK.into());
        if !keys::is_valid_network_name(&network) {
            bail!("--network {network:?}: use 1 to {} letters, digits, '-', '_' or '.'", keys::MAX_NETWORK_LEN);
        }
        let bridge = flags.bridge.or(file.bridge).unwrap_or_else(|| "weavers".into());
        if bridge.is_empty()
            || bridge.len() > 11
            || !bridge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("--bridge {bridge:?}: use 1-11 letters, digits, '-' or '_' (the TAP is named BRIDGE-tap, within Linux's 15-character limit)");
        }
        let range = flags.ipalloc_range.or(file.ipalloc_range).unwrap_or_else(|| "10.32.0.0/12".into());
        let ipalloc_range = parse_cidr(&range).with_context(|| format!("--ipalloc-range {range:?}"))?;
        let name = flags.name.or(file.name).unwrap_or_else(hostname);
        if name.is_empty() || name.len() > weavers_proto::gossip::MAX_NAME_LEN {
            bail!("--name must be 1 to {} bytes", weavers_proto::gossip::MAX_NAME_LEN);
        }
        let query_interval = flags.query_interval.or(file.query_interval).unwrap_or(125);
        if !(2..=3600).contains(&query_interval) {
            bail!("--query-interval must be 2 to 3600 seconds");
        }
        Ok(Settings {
            query_interval: std::time::Duration::from_secs(query_interval),
            state_dir: flags.state_dir.or(file.state_dir).unwrap_or_else(|| "/var/lib/weavers".into()),
            socket: flags.socket.or(file.socket).unwrap_or_else(|| "/run/weavers/weavers.sock".into()),
            listen: flags.listen.or(file.listen).unwrap_or_else(|| "0.0.0.0:6783".parse().expect("valid")),
            password,
            authority,
            network,
            // Empty entries (an empty WEAVERS_PEER, a trailing comma) are no peers.
            peers: if flags.peer.iter().all(|p| p.trim().is_empty()) { file.peer } else { flags.peer }
                .into_iter()
                .filter(|p| !p.trim().is_empty())
                .collect(),
            name,
            bridge,
            ipalloc_range,
            metrics_addr: flags.metrics_addr.or(file.metrics_addr),
            dns_upstream: flags.dns_upstream.or(file.dns_upstream),
            dns_port: flags.dns_port.or(file.dns_port).unwrap_or(53),
        })
    }
}

/// Parses `ADDR/LEN` (the parser the control API and the plugin use too).
pub use weavers_api::parse_cidr;

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "weavers".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_apply_under_flags() {
        let dir = std::env::temp_dir().join(format!("weavers-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("weaversd.toml");
        std::fs::write(
            &cfg,
            "password = \"s3cret\"\nname = \"from-file\"\nbridge = \"wvb\"\npeer = [\"10.0.0.1\", \"10.0.0.2:7000\"]\n\
             dns_upstream = \"192.0.2.53:53\"\n",
        )
        .unwrap();
        let flags =
            Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap(), "--name", "from-flag"]).unwrap();
        let s = Settings::load(flags).unwrap();
        assert_eq!(s.name, "from-flag");
        assert_eq!(s.bridge, "wvb");
        assert_eq!(s.peers, vec!["10.0.0.1", "10.0.0.2:7000"]);
        // An empty --peer (WEAVERS_PEER="" in a manifest) is no peer.
        let flags = Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap(), "--peer", ""]).unwrap();
        assert_eq!(Settings::load(flags).unwrap().peers, vec!["10.0.0.1", "10.0.0.2:7000"]);
        let flags =
            Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap(), "--peer", "10.0.0.9,"]).unwrap();
        assert_eq!(Settings::load(flags).unwrap().peers, vec!["10.0.0.9"]);
        assert_eq!(s.listen, "0.0.0.0:6783".parse().unwrap());
        assert_eq!(s.dns_upstream, Some("192.0.2.53:53".parse().unwrap()));
        assert_eq!(s.dns_port, 53);
        assert_eq!(s.network, "weavers", "the default network name");
        std::fs::write(&cfg, "password = \"s3cret\"\nnetwork = \"prod-eu\"\n").unwrap();
        let flags = Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap()]).unwrap();
        assert_eq!(Settings::load(flags).unwrap().network, "prod-eu");
        let flags = Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap(), "--network", "lab"]).unwrap();
        assert_eq!(Settings::load(flags).unwrap().network, "lab", "the flag wins");
        let flags = Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap(), "--network", "a b"]).unwrap();
        let e = format!("{:#}", Settings::load(flags).unwrap_err());
        assert!(e.starts_with("--network \"a b\""), "{e}");
        std::fs::write(&cfg, "nmae = \"typo\"\n").unwrap();
        let flags = Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap()]).unwrap();
        assert!(Settings::load(flags).is_err(), "unknown keys are refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn a_bad_range_is_refused_naming_the_option() {
        let dir = std::env::temp_dir().join(format!("weavers-config-range-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("weaversd.toml");
        std::fs::write(&cfg, "password = \"s3cret\"\n").unwrap();
        let load = |range: &str| {
            let flags =
                Flags::try_parse_from(["weaversd", "--config", cfg.to_str().unwrap(), "--ipalloc-range", range])
                    .unwrap();
            Settings::load(flags)
        };
        assert_eq!(load("10.40.0.0/16").unwrap().ipalloc_range, ("10.40.0.0".parse().unwrap(), 16));
        for bad in ["10.32.0.0/33", "10.32.0.0", "10.32.0.0/+1"] {
            let e = format!("{:#}", load(bad).unwrap_err());
            assert!(e.starts_with("--ipalloc-range") && e.contains("invalid CIDR"), "{bad}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
