//! What the runtime hands the plugin: the network configuration on stdin and
//! the `CNI_*` environment. Everything is checked here, before the plugin
//! touches the kernel or the daemon, so that a bad invocation creates
//! nothing.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::spec::{self, CniError};

/// The daemon's control socket when the configuration names none.
pub const DEFAULT_SOCKET: &str = "/run/weavers/weavers.sock";
/// Most bytes read from stdin.
pub const MAX_CONFIG_LEN: usize = 1 << 20;
/// Longest container ID accepted: the DNS owner tag (`cni:ID/IFNAME`) must
/// stay within the daemon's 128 characters. Runtimes use 64.
pub const MAX_CONTAINER_ID_LEN: usize = 100;

/// The keys under which runtimes pass the attachments GC must keep (libcni
/// 1.2 sends both, the second being an early misspelling).
const VALID_ATTACHMENTS_KEYS: [&str; 2] = ["cni.dev/valid-attachments", "cni.dev/attachments"];

/// The network configuration (this plugin's entry of the conflist, as the
/// runtime passes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConf {
    pub cni_version: String,
    /// The network's name.
    pub name: String,
    /// The plugin type (`weavers-cni`).
    pub plugin_type: String,
    /// The daemon's control socket (`socket`, default [`DEFAULT_SOCKET`]).
    pub socket: PathBuf,
    /// `defaultRoute`: a default route through the bridge's overlay address.
    pub default_route: bool,
    /// `bridge`: the daemon's bridge; when absent the daemon is asked.
    pub bridge: Option<String>,
    /// The result of the previous ADD (CHECK and DEL get it).
    pub prev_result: Option<PrevResult>,
    /// GC: the attachments to keep, as `CONTAINERID/IFNAME`.
    pub valid_attachments: Option<Vec<String>>,
}

/// The parts of a previous result that CHECK looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PrevResult {
    #[serde(default)]
    pub interfaces: Vec<PrevInterface>,
    #[serde(default)]
    pub ips: Vec<PrevIp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PrevInterface {
    pub name: String,
    #[serde(default)]
    pub sandbox: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PrevIp {
    pub address: String,
    #[serde(default)]
    pub interface: Option<usize>,
}

impl PrevResult {
    /// The addresses the previous result gave to the container interface
    /// `ifname` (those without an interface index count too).
    pub fn addresses_of(&self, ifname: &str) -> Vec<String> {
        self.ips
            .iter()
            .filter(|ip| match ip.interface {
                None => true,
                Some(i) => self.interfaces.get(i).is_some_and(|intf| intf.name == ifname && intf.sandbox.is_some()),
            })
            .map(|ip| ip.address.clone())
            .collect()
    }
}

/// The `cniVersion` of a configuration, as far as it can be read (for the
/// error object when the configuration itself is bad).
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().filter(|s| s.len() <= 32).map(str::to_owned)
}

/// Parses and checks the network configuration.
pub fn parse_config(stdin: &[u8]) -> Result<NetConf, CniError> {
    if stdin.len() > MAX_CONFIG_LEN {
        return Err(CniError::decode(format!("the configuration is longer than {MAX_CONFIG_LEN} bytes")));
    }
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::decode("no network configuration on stdin (expected a JSON object)"));
    }
    let value: Value = serde_json::from_slice(stdin)
        .map_err(|e| CniError::decode(format!("the network configuration on stdin is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(CniError::decode("the network configuration must be a JSON object"));
    };

    let cni_version = required_str(&obj, "cniVersion")?;
    if !spec::is_supported(&cni_version) {
        return Err(CniError::incompatible_version(format!(
            "cniVersion {:?} is not supported; this plugin speaks {}",
            shown(&cni_version),
            spec::SUPPORTED_VERSIONS.join(", ")
        )));
    }
    let name = required_str(&obj, "name")?;
    if name.is_empty() {
        return Err(CniError::invalid_config("\"name\" (the network's name) is empty"));
    }
    let plugin_type = required_str(&obj, "type")?;

    let socket = match optional_str(&obj, "socket")? {
        None => PathBuf::from(DEFAULT_SOCKET),
        Some(s) if s.starts_with('/') && !s.contains('\0') => PathBuf::from(s),
        Some(s) => {
            return Err(CniError::invalid_config(format!(
                "\"socket\" must be an absolute path to weaversd's control socket, not {:?}",
                shown(&s)
            )))
        }
    };
    let default_route = match obj.get("defaultRoute") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(CniError::invalid_config(format!("\"defaultRoute\" must be true or false, not {other}")))
        }
    };
    let bridge = optional_str(&obj, "bridge")?;
    if let Some(b) = &bridge {
        check_ifname(b).map_err(|why| CniError::invalid_config(format!("\"bridge\" {:?}: {why}", shown(b))))?;
    }
    let prev_result = match obj.get("prevResult") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(
            PrevResult::deserialize(v)
                .map_err(|e| CniError::invalid_config(format!("\"prevResult\" is not a CNI result: {e}")))?,
        ),
        Some(_) => return Err(CniError::invalid_config("\"prevResult\" must be a JSON object")),
    };
    let valid_attachments = match VALID_ATTACHMENTS_KEYS.iter().find_map(|k| obj.get(*k).map(|v| (*k, v))) {
        None => None,
        Some((key, v)) => Some(parse_attachments(key, v)?),
    };

    Ok(NetConf { cni_version, name, plugin_type, socket, default_route, bridge, prev_result, valid_attachments })
}

fn parse_attachments(key: &str, v: &Value) -> Result<Vec<String>, CniError> {
    let bad = |why: String| CniError::invalid_config(format!("\"{key}\": {why}"));
    let Value::Array(items) = v else {
        return Err(bad("must be an array of {\"containerID\", \"ifname\"} objects".into()));
    };
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = item.get("containerID").and_then(Value::as_str);
        let ifname = item.get("ifname").and_then(Value::as_str);
        match (id, ifname) {
            (Some(id), Some(ifname)) => keys.push(crate::names::attachment_key(id, ifname)),
            _ => return Err(bad(format!("entry {i} lacks a string \"containerID\" or \"ifname\""))),
        }
    }
    Ok(keys)
}

fn required_str(obj: &Map<String, Value>, key: &str) -> Result<String, CniError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(CniError::invalid_config(format!("\"{key}\" is missing"))),
        Some(other) => Err(CniError::invalid_config(format!("\"{key}\" must be a string, not {other}"))),
    }
}

fn optional_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CniError::invalid_config(format!("\"{key}\" must be a string, not {other}"))),
    }
}

/// At most 64 characters of untrusted text, control characters replaced.
pub fn shown(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }
}

/// The container interface an ADD, DEL or CHECK is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
    /// `CNI_NETNS`; DEL may come without it.
    pub netns: Option<PathBuf>,
    /// `K8S_POD_NAME` from `CNI_ARGS`.
    pub pod_name: Option<String>,
}

/// The validated environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// For ADD, DEL and CHECK.
    pub attachment: Option<Attachment>,
}

/// Reads `CNI_COMMAND` alone (VERSION needs nothing else).
pub fn parse_command(get: &dyn Fn(&str) -> Option<String>) -> Result<Command, CniError> {
    match get("CNI_COMMAND").filter(|s| !s.is_empty()) {
        None => Err(CniError::invalid_env(
            "CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime \
             (CNI_COMMAND=ADD|DEL|CHECK|VERSION|STATUS|GC, the network configuration on stdin)",
        )),
        Some(c) => Command::parse(&c).ok_or_else(|| {
            CniError::invalid_env(format!(
                "CNI_COMMAND {:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC",
                shown(&c)
            ))
        }),
    }
}

/// Reads and checks the `CNI_*` variables `command` needs.
pub fn parse_env(command: Command, get: &dyn Fn(&str) -> Option<String>) -> Result<Env, CniError> {
    let get = |k: &str| get(k).filter(|s| !s.is_empty());
    let attachment = match command {
        Command::Add | Command::Del | Command::Check => {
            let mut missing = Vec::new();
            let id = get("CNI_CONTAINERID");
            let ifname = get("CNI_IFNAME");
            let netns = get("CNI_NETNS");
            if id.is_none() {
                missing.push("CNI_CONTAINERID");
            }
            if ifname.is_none() {
                missing.push("CNI_IFNAME");
            }
            if netns.is_none() && command != Command::Del {
                missing.push("CNI_NETNS");
            }
            if !missing.is_empty() {
                return Err(CniError::invalid_env(format!("not set: {}", missing.join(", "))));
            }
            let (id, ifname) = (id.unwrap_or_default(), ifname.unwrap_or_default());
            check_container_id(&id)
                .map_err(|why| CniError::invalid_env(format!("CNI_CONTAINERID {:?}: {why}", shown(&id))))?;
            check_ifname(&ifname)
                .map_err(|why| CniError::invalid_env(format!("CNI_IFNAME {:?}: {why}", shown(&ifname))))?;
            if let Some(n) = &netns {
                if !n.starts_with('/') || n.contains('\0') {
                    return Err(CniError::invalid_env(format!(
                        "CNI_NETNS {:?}: give the absolute path of the container's network namespace",
                        shown(n)
                    )));
                }
            }
            let args = parse_cni_args(get("CNI_ARGS").as_deref().unwrap_or(""));
            let pod_name =
                args.into_iter().find(|(k, _)| k == "K8S_POD_NAME").map(|(_, v)| v).filter(|v| !v.is_empty());
            Some(Attachment { container_id: id, ifname, netns: netns.map(PathBuf::from), pod_name })
        }
        Command::Version | Command::Status | Command::Gc => None,
    };
    Ok(Env { command, attachment })
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`. Items without `=` are
/// skipped.
pub fn parse_cni_args(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The spec's rule for container IDs: an alphanumeric character, then
/// alphanumerics, `_`, `.` or `-`.
pub fn check_container_id(id: &str) -> Result<(), String> {
    let mut bytes = id.bytes();
    match bytes.next() {
        None => return Err("empty".into()),
        Some(b) if !b.is_ascii_alphanumeric() => return Err("must start with a letter or digit".into()),
        _ => {}
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
        return Err("may hold only letters, digits, '_', '.' and '-'".into());
    }
    if id.len() > MAX_CONTAINER_ID_LEN {
        return Err(format!("longer than {MAX_CONTAINER_ID_LEN} characters"));
    }
    Ok(())
}

/// Linux's rule for interface names (as the spec repeats it): the one the
/// daemon applies too.
pub use weavers_netlink::check_ifname;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    const CID: &str = "3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755";

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = parse_config(br#"{"cniVersion":"1.1.0","name":"weavers","type":"weavers-cni"}"#).unwrap();
        assert_eq!(c.cni_version, "1.1.0");
        assert_eq!(c.name, "weavers");
        assert_eq!(c.plugin_type, "weavers-cni");
        assert_eq!(c.socket, PathBuf::from("/run/weavers/weavers.sock"));
        assert!(!c.default_route);
        assert_eq!(c.bridge, None);
        assert_eq!(c.prev_result, None);
        assert_eq!(c.valid_attachments, None);
    }

    #[test]
    fn every_option_is_read() {
        let c = parse_config(
            br#"{"cniVersion":"1.0.0","name":"n","type":"weavers-cni","socket":"/tmp/w.sock",
                 "defaultRoute":true,"bridge":"wvbr","runtimeConfig":{},"args":{"x":1},
                 "prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"vwv1","mac":"x"},
                   {"name":"eth0","sandbox":"/run/netns/c"}],
                   "ips":[{"address":"10.32.0.9/12","interface":1}],"dns":{}},
                 "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"net1"}]}"#,
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/w.sock"));
        assert!(c.default_route);
        assert_eq!(c.bridge.as_deref(), Some("wvbr"));
        assert_eq!(c.prev_result.as_ref().unwrap().addresses_of("eth0"), vec!["10.32.0.9/12".to_string()]);
        assert!(c.prev_result.as_ref().unwrap().addresses_of("net1").is_empty());
        assert_eq!(c.valid_attachments, Some(vec!["a/eth0".to_string(), "b/net1".to_string()]));
        // The older spelling.
        let c = parse_config(br#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/attachments":[]}"#).unwrap();
        assert_eq!(c.valid_attachments, Some(vec![]));
    }

    #[test]
    fn bad_configs_get_the_spec_codes() {
        let cases: &[(&[u8], u32)] = &[
            (b"", 6),
            (b"  \n", 6),
            (b"{not json", 6),
            (b"[1,2]", 6),
            (br#"{"name":"n","type":"t"}"#, 7),
            (br#"{"cniVersion":1,"name":"n","type":"t"}"#, 7),
            (br#"{"cniVersion":"0.3.1","name":"n","type":"t"}"#, 1),
            (br#"{"cniVersion":"2.0.0","name":"n","type":"t"}"#, 1),
            (br#"{"cniVersion":"1.1.0","type":"t"}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"","type":"t"}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n"}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","socket":"relative.sock"}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","socket":7}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","defaultRoute":"yes"}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","bridge":"a/b"}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","bridge":"much-too-long-bridge"}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","prevResult":[]}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","prevResult":{"ips":[{"gateway":"x"}]}}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/valid-attachments":{}}"#, 7),
            (br#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/valid-attachments":[{"containerID":"a"}]}"#, 7),
        ];
        for (input, code) in cases {
            let e = parse_config(input).expect_err(&String::from_utf8_lossy(input));
            assert_eq!(e.code, *code, "{}: {e}", String::from_utf8_lossy(input));
            assert!(!e.details.is_empty());
        }
        let huge = vec![b' '; MAX_CONFIG_LEN + 1];
        assert_eq!(parse_config(&huge).unwrap_err().code, 6);
    }

    #[test]
    fn peek_version_reads_what_it_can() {
        assert_eq!(peek_version(br#"{"cniVersion":"1.0.0"}"#).as_deref(), Some("1.0.0"));
        assert_eq!(peek_version(b"nope"), None);
        assert_eq!(peek_version(br#"{"cniVersion":5}"#), None);
    }

    #[test]
    fn command_is_required_and_known() {
        assert_eq!(parse_command(&env_of(&[("CNI_COMMAND", "ADD")])).unwrap(), Command::Add);
        assert_eq!(parse_command(&env_of(&[("CNI_COMMAND", "GC")])).unwrap(), Command::Gc);
        assert_eq!(parse_command(&env_of(&[])).unwrap_err().code, 4);
        assert_eq!(parse_command(&env_of(&[("CNI_COMMAND", "")])).unwrap_err().code, 4);
        let e = parse_command(&env_of(&[("CNI_COMMAND", "add")])).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.details.contains("CNI_COMMAND"));
    }

    #[test]
    fn add_needs_id_ifname_and_netns_and_names_what_is_missing() {
        let e = parse_env(Command::Add, &env_of(&[("CNI_COMMAND", "ADD")])).unwrap_err();
        assert_eq!(e.code, 4);
        for v in ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
            assert!(e.details.contains(v), "{e}");
        }
        let e = parse_env(Command::Add, &env_of(&[("CNI_CONTAINERID", CID), ("CNI_IFNAME", "eth0")])).unwrap_err();
        assert!(e.details.contains("CNI_NETNS") && !e.details.contains("CNI_IFNAME"), "{e}");

        let env = parse_env(
            Command::Add,
            &env_of(&[
                ("CNI_CONTAINERID", CID),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", "/var/run/netns/c1"),
                ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;junk"),
            ]),
        )
        .unwrap();
        let a = env.attachment.unwrap();
        assert_eq!(a.container_id, CID);
        assert_eq!(a.ifname, "eth0");
        assert_eq!(a.netns, Some(PathBuf::from("/var/run/netns/c1")));
        assert_eq!(a.pod_name.as_deref(), Some("web-0"));
    }

    #[test]
    fn del_may_come_without_netns() {
        let env = parse_env(Command::Del, &env_of(&[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")])).unwrap();
        assert_eq!(env.attachment.unwrap().netns, None);
        let env =
            parse_env(Command::Del, &env_of(&[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0"), ("CNI_NETNS", "")]))
                .unwrap();
        assert_eq!(env.attachment.unwrap().netns, None);
    }

    #[test]
    fn bad_ids_names_and_paths_are_refused() {
        let base = [("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0"), ("CNI_NETNS", "/run/netns/x")];
        let with = |k: &str, v: &str| {
            let mut pairs: Vec<(&str, String)> = base.iter().map(|(a, b)| (*a, b.to_string())).collect();
            for p in &mut pairs {
                if p.0 == k {
                    p.1 = v.to_owned();
                }
            }
            let m: HashMap<String, String> = pairs.into_iter().map(|(a, b)| (a.to_owned(), b)).collect();
            parse_env(Command::Add, &move |k: &str| m.get(k).cloned())
        };
        assert!(with("CNI_IFNAME", "eth0").is_ok());
        let long_id = "a".repeat(MAX_CONTAINER_ID_LEN + 1);
        for (k, v) in [
            ("CNI_CONTAINERID", "-leading"),
            ("CNI_CONTAINERID", "has space"),
            ("CNI_CONTAINERID", "a/b"),
            ("CNI_CONTAINERID", long_id.as_str()),
            ("CNI_IFNAME", "."),
            ("CNI_IFNAME", "a:b"),
            ("CNI_IFNAME", "sixteen-chars-xx"),
            ("CNI_IFNAME", "tab\tname"),
            ("CNI_NETNS", "relative/path"),
        ] {
            let e = with(k, v).expect_err(v);
            assert_eq!(e.code, 4);
            assert!(e.details.contains(k), "{e}");
        }
    }

    #[test]
    fn version_status_and_gc_need_no_container() {
        for c in [Command::Version, Command::Status, Command::Gc] {
            assert_eq!(parse_env(c, &env_of(&[])).unwrap().attachment, None);
        }
    }

    #[test]
    fn cni_args_pairs() {
        assert_eq!(
            parse_cni_args("A=1;B=x=y; C = 3 ;;noequals;=v"),
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into()), ("C".into(), "3".into())]
        );
        assert!(parse_cni_args("").is_empty());
    }
}
