//! `weavers-cni`: the CNI 1.1 plugin of weavers.
//!
//! A container runtime runs the `weavers-cni` binary with the network
//! configuration on stdin and the `CNI_*` variables in the environment
//! (CNI spec 1.1.0). The plugin talks to the host's `weaversd` over its
//! control socket and to the kernel over netlink:
//!
//! - **ADD** asks the daemon's IPAM for an address (owner
//!   `CONTAINERID/IFNAME`), makes a veth pair: `CNI_IFNAME` inside
//!   `CNI_NETNS` with the address, the overlay MTU, the route to the overlay
//!   range (from the prefix), a `224.0.0.0/4` route and, with
//!   `"defaultRoute": true`, a default route through the bridge's overlay
//!   address; the host end (`vwv` + 8 hex digits of a hash of the
//!   attachment, its alias `weavers-cni:CONTAINERID/IFNAME`) on the bridge.
//!   It registers the container's name (`K8S_POD_NAME` from `CNI_ARGS`,
//!   else the first 12 characters of the container ID) in the overlay DNS
//!   with the owner tag `cni:CONTAINERID/IFNAME`, and prints the result. A
//!   failure after the allocation undoes everything.
//! - **DEL** removes the links, then the DNS names and the address. A
//!   second DEL, a missing namespace or interface are fine. When the daemon
//!   does not answer, the links are still removed and DEL fails with code
//!   11, so that the runtime retries; the address stays held until then (or
//!   until GC).
//! - **CHECK** checks that the daemon holds the address, that the container
//!   has the interface, up, with it (from `prevResult` when given), and
//!   that the host end is on the bridge.
//! - **STATUS** succeeds when the daemon answers, its IPAM can allocate and
//!   the bridge exists; else code 50.
//! - **GC** removes this host's veths, addresses and DNS names of
//!   attachments not in `cni.dev/valid-attachments`.
//! - **VERSION** lists 0.4.0, 1.0.0 and 1.1.0.
//!
//! Errors are the spec's error object on stdout with a non-zero exit:
//! 1 unsupported `cniVersion`, 4 bad or missing `CNI_*` variables, 5 stdin
//! unreadable, 6 stdin not JSON, 7 bad configuration, 11 the daemon does not
//! answer (try again later), 50 not ready (STATUS), 999 anything else (a
//! daemon refusal, a netlink failure, a failed CHECK). Everything is
//! checked before anything is made, so a bad invocation creates nothing.
//!
//! One weavers network per host: all configurations of type `weavers-cni`
//! share the daemon's bridge and range, and GC with one network's
//! attachments would remove the others'.

pub mod commands;
pub mod config;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod names;
pub mod netns;
pub mod spec;

use config::Command;
use spec::{CniError, VersionResult, LATEST_VERSION};

/// What to print on stdout, and whether it is a success.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// JSON (a result or an error object), or empty.
    pub stdout: String,
    pub success: bool,
}

impl Outcome {
    fn ok(stdout: String) -> Self {
        Outcome { stdout, success: true }
    }

    fn error(e: &CniError, version: Option<&str>) -> Self {
        let json = serde_json::to_string(&e.to_json(version.unwrap_or(LATEST_VERSION)))
            .unwrap_or_else(|_| format!("{{\"code\":{}}}", e.code));
        Outcome { stdout: json, success: false }
    }
}

/// Runs one invocation: `stdin` is what the runtime wrote, `env` looks up
/// the environment, and `stdin_error` is set when stdin could not be read.
pub fn run(stdin: &[u8], stdin_error: Option<String>, env: &dyn Fn(&str) -> Option<String>) -> Outcome {
    let peeked = config::peek_version(stdin);
    let command = match config::parse_command(env) {
        Ok(c) => c,
        Err(e) => return Outcome::error(&e, peeked.as_deref()),
    };
    if command == Command::Version {
        let v = VersionResult::new(peeked.as_deref());
        return Outcome::ok(serde_json::to_string(&v).expect("version result serializes"));
    }
    if let Some(e) = stdin_error {
        return Outcome::error(&CniError::io(format!("reading the network configuration from stdin: {e}")), None);
    }
    let conf = match config::parse_config(stdin) {
        Ok(c) => c,
        Err(e) => return Outcome::error(&e, peeked.as_deref()),
    };
    let version = conf.cni_version.clone();
    let env = match config::parse_env(command, env) {
        Ok(e) => e,
        Err(e) => return Outcome::error(&e, Some(&version)),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return Outcome::error(&CniError::other("internal error", format!("no async runtime: {e}")), None),
    };
    let result = rt.block_on(async {
        let att = env.attachment.as_ref();
        match command {
            Command::Add => commands::add(&conf, att.expect("checked"))
                .await
                .map(|r| serde_json::to_string(&r).expect("result serializes")),
            Command::Del => commands::del(&conf, att.expect("checked")).await.map(|()| String::new()),
            Command::Check => commands::check(&conf, att.expect("checked")).await.map(|()| String::new()),
            Command::Status => commands::status(&conf).await.map(|()| String::new()),
            Command::Gc => commands::gc(&conf).await.map(|()| String::new()),
            Command::Version => unreachable!("answered above"),
        }
    });
    match result {
        Ok(out) => Outcome::ok(out),
        Err(e) => Outcome::error(&e, Some(&version)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    fn json(o: &Outcome) -> Value {
        serde_json::from_str(&o.stdout).unwrap()
    }

    #[test]
    fn version_works_with_any_stdin() {
        let o = run(br#"{"cniVersion":"1.0.0"}"#, None, &env(&[("CNI_COMMAND", "VERSION")]));
        assert!(o.success);
        assert_eq!(json(&o)["cniVersion"], "1.0.0");
        let o = run(b"", Some("broken pipe".into()), &env(&[("CNI_COMMAND", "VERSION")]));
        assert!(o.success);
        assert_eq!(json(&o)["supportedVersions"], serde_json::json!(["0.4.0", "1.0.0", "1.1.0"]));
    }

    #[test]
    fn errors_carry_the_configs_version_when_known() {
        let conf = br#"{"cniVersion":"1.0.0","name":"weavers","type":"weavers-cni"}"#;
        let o = run(conf, None, &env(&[("CNI_COMMAND", "ADD")]));
        assert!(!o.success);
        let e = json(&o);
        assert_eq!((e["cniVersion"].as_str(), e["code"].as_u64()), (Some("1.0.0"), Some(4)));
        let o = run(b"{", None, &env(&[("CNI_COMMAND", "DEL")]));
        assert_eq!((json(&o)["cniVersion"].as_str(), json(&o)["code"].as_u64()), (Some("1.1.0"), Some(6)));
        let o = run(conf, Some("EIO".into()), &env(&[("CNI_COMMAND", "ADD")]));
        assert_eq!(json(&o)["code"], 5);
        let o = run(conf, None, &env(&[]));
        assert_eq!(json(&o)["code"], 4);
    }

    #[test]
    fn status_without_a_daemon_is_not_available() {
        let conf = br#"{"cniVersion":"1.1.0","name":"w","type":"weavers-cni","socket":"/nonexistent/weavers.sock"}"#;
        let o = run(conf, None, &env(&[("CNI_COMMAND", "STATUS")]));
        assert!(!o.success);
        let e = json(&o);
        assert_eq!(e["code"], 50);
        assert!(e["details"].as_str().unwrap().contains("/nonexistent/weavers.sock"), "{e}");
    }
}
