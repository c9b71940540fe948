//! The body of the `cni` fuzz target (`fuzz/fuzz_targets/cni.rs`), also
//! replayed by this crate's tests: a network configuration and an
//! environment as a container runtime hands them to the plugin, checked
//! the way [`crate::run`] checks them before it touches anything.

use crate::config::{self, Command};
use crate::names;

/// `data` is the configuration (stdin), a NUL byte, then the environment
/// as `KEY=VALUE` lines.
pub fn config_and_env(data: &[u8]) {
    let (stdin, env) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let env = String::from_utf8_lossy(env);
    let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| vars.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());

    let peeked = config::peek_version(stdin);
    assert!(peeked.as_ref().is_none_or(|v| v.len() <= 32));
    if let Ok(conf) = config::parse_config(stdin) {
        if let Some(prev) = &conf.prev_result {
            let _ = prev.addresses_of(get("CNI_IFNAME").as_deref().unwrap_or("eth0"));
        }
        let _ = conf.valid_attachments.as_ref().map(|v| v.len());
    }
    let command = config::parse_command(&get);
    if command == Ok(Command::Version) {
        // Answered without a daemon: safe to run whole.
        let out = crate::run(stdin, None, &get);
        assert!(out.success, "VERSION failed: {}", out.stdout);
    }
    for c in [Command::Add, Command::Del, Command::Check, Command::Status, Command::Gc, Command::Version] {
        let Ok(env) = config::parse_env(c, &get) else { continue };
        if let Some(a) = env.attachment {
            let veth = names::host_veth_name(&a.container_id, &a.ifname);
            assert!(veth.len() < 16, "interface name {veth:?} too long for the kernel");
            let owner = names::dns_owner(&a.container_id, &a.ifname);
            let _ = names::key_of_dns_owner(&owner);
            let alias = names::link_alias(&a.container_id, &a.ifname);
            assert_eq!(names::key_of_alias(&alias), Some(&*names::attachment_key(&a.container_id, &a.ifname)));
            let label = names::dns_label(a.pod_name.as_deref(), &a.container_id);
            assert!(weavers_api::dns_name::is_valid_name(&label), "DNS label {label:?} is not a valid name");
        }
    }
    let _ = config::parse_cni_args(&get("CNI_ARGS").unwrap_or_default());
    let _ = config::check_container_id(&get("CNI_CONTAINERID").unwrap_or_default());
    let _ = config::shown(&env);
}
