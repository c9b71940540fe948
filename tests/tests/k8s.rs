//! Kubernetes (dist/k8s): the DaemonSet and Containerfile parse and agree
//! with each other and with the daemon's settings; and the image's
//! entrypoint, run in the lab as the DaemonSet runs it (init container into
//! a scratch CNI dir, the daemon with the Secret's password file and a
//! scratch state dir, the postStart hook, the liveness probe), gives two
//! nodes whose containers, added by the plugin it installed with the
//! conflist it wrote, reach each other.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test k8s`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use weavers_tests::cni::{new_container, CniContainer};
use weavers_tests::lab::output_with_input;
use weavers_tests::{bins, lab_or_skip, random_hex, wait_until, Lab};

const SEC: Duration = Duration::from_secs(1);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The documents of dist/k8s/weavers.yaml, as JSON values.
fn manifests() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("dist/k8s/weavers.yaml")).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|s| s.as_str().unwrap()).collect()
}

#[test]
fn the_manifest_and_the_containerfile_agree() {
    let docs = manifests();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "DaemonSet"], "no RBAC: the daemon asks the API nothing");
    let config = &docs[0]["data"];
    let ds = &docs[1];
    assert_eq!(ds["apiVersion"], "apps/v1");
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in ds["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the selector matches the pods");
    }
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["tolerations"][0]["operator"], "Exists", "runs on every node");

    let init = &pod["initContainers"][0];
    assert_eq!(strings(&init["args"]), ["install-cni"]);
    let daemon = &pod["containers"][0];
    assert_eq!(strings(&daemon["args"]), ["daemon"]);
    assert_eq!(init["image"], daemon["image"]);
    let caps = &daemon["securityContext"]["capabilities"];
    assert_eq!(strings(&caps["drop"]), ["ALL"]);
    assert_eq!(strings(&caps["add"]), ["NET_ADMIN", "NET_BIND_SERVICE"]);
    assert_ne!(daemon["securityContext"]["privileged"], true);
    let entry = "/usr/local/bin/weavers-entrypoint";
    assert_eq!(strings(&daemon["livenessProbe"]["exec"]["command"]), [entry, "live"]);
    assert_eq!(strings(&daemon["lifecycle"]["postStart"]["exec"]["command"]), [entry, "expose"]);

    // Volumes: every mount has one; the node's paths are the ones the
    // plugin and the runtime use.
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no volume {name}"));
    for c in [init, daemon] {
        for m in c["volumeMounts"].as_array().unwrap() {
            volume(m["name"].as_str().unwrap());
        }
    }
    assert_eq!(volume("cni-bin")["hostPath"]["path"], "/opt/cni/bin");
    assert_eq!(volume("cni-conf")["hostPath"]["path"], "/etc/cni/net.d");
    assert_eq!(volume("run")["hostPath"]["path"], "/run/weavers");
    assert_eq!(volume("state")["hostPath"]["path"], "/var/lib/weavers");
    assert_eq!(volume("tun")["hostPath"]["type"], "CharDevice");
    assert_eq!(volume("password")["secret"]["defaultMode"], 0o400, "the daemon refuses a looser password file");

    // Environment: each WEAVERS_* variable is one weaversd reads, each
    // ConfigMap key referenced exists, the paths match the mounts.
    let help = Command::new(bins::weaversd()).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let mut env = BTreeSet::new();
    for e in daemon["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(help.contains(&format!("[env: {name}=")), "weaversd does not read {name}");
        if let Some(key) = e["valueFrom"]["configMapKeyRef"]["key"].as_str() {
            assert!(config[key].is_string(), "the ConfigMap has no {key}");
        }
        env.insert(name);
    }
    let value = |c: &Value, name: &str| -> String {
        c["env"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap()["value"].as_str().unwrap().to_owned()
    };
    assert!(value(daemon, "WEAVERS_PASSWORD_FILE").starts_with("/etc/weavers-secret/"));
    assert_eq!(
        value(daemon, "WEAVERS_SOCKET"),
        value(init, "WEAVERS_SOCKET"),
        "the conflist names the daemon's socket"
    );
    assert!(value(daemon, "WEAVERS_SOCKET").starts_with("/run/weavers/"));
    for want in ["WEAVERS_NAME", "WEAVERS_PEER", "WEAVERS_STATE_DIR"] {
        assert!(env.contains(want), "no {want}");
    }

    // The image: multi-stage, slim, the binaries where the entrypoint looks,
    // the entrypoint where the DaemonSet calls it.
    let cf = std::fs::read_to_string(repo().join("dist/k8s/Containerfile")).unwrap();
    let lines: Vec<&str> = cf.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].ends_with(" AS build") && froms[1].contains("slim"), "{froms:?}");
    let copy_bins = lines.iter().find(|l| l.starts_with("COPY --from=build ")).expect("binaries from the build stage");
    for b in ["weaversd", "weavers", "weavers-cni"] {
        assert!(copy_bins.contains(&format!("/target/release/{b} ")), "{copy_bins}");
    }
    assert!(copy_bins.ends_with(" /usr/local/bin/"));
    assert!(lines.contains(&format!("COPY dist/k8s/entrypoint.sh {entry}").as_str()));
    assert!(lines.contains(&format!("ENTRYPOINT [\"{entry}\"]").as_str()));
    assert!(repo().join(".dockerignore").is_file(), "the build context would carry target/");
}

/// Processes this test started, SIGTERMed (then SIGKILLed) by PID when
/// dropped, before the lab removes the namespaces.
#[derive(Default)]
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if c.try_wait().ok().flatten().is_none() {
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGKILL) };
            }
            let _ = c.wait();
        }
    }
}

/// One node's paths, as the DaemonSet's mounts give them.
struct Node {
    cni_bin: PathBuf,
    cni_conf: PathBuf,
    state: PathBuf,
    socket: PathBuf,
    password: PathBuf,
}

/// The entrypoint with exactly the DaemonSet's environment for `node`
/// (plus PATH and where the image's binaries are), in host `i`'s namespace.
fn entrypoint(lab: &Lab, i: usize, image_bin: &Path, node: &Node, peers: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.ns(i), "sh"]).arg(repo().join("dist/k8s/entrypoint.sh")).args(args);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("WEAVERS_IMAGE_BIN", image_bin)
        .env("CNI_BIN_DIR", &node.cni_bin)
        .env("CNI_CONF_DIR", &node.cni_conf)
        .env("WEAVERS_SOCKET", &node.socket)
        .env("WEAVERS_NAME", format!("node{i}"))
        .env("WEAVERS_PEER", peers)
        .env("WEAVERS_IPALLOC_RANGE", "10.32.0.0/12")
        .env("WEAVERS_LOG_FORMAT", "json")
        .env("WEAVERS_PASSWORD_FILE", &node.password)
        .env("WEAVERS_STATE_DIR", &node.state)
        .env("WEAVERS_METRICS_ADDR", "127.0.0.1:9783");
    cmd
}

fn run(cmd: Command, what: &str) -> Output {
    let out = output_with_input(cmd, None, 150 * SEC).unwrap();
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// CNI ADD of container `c` with the plugin and the conflist that the init
/// container installed; the container's address.
fn add_with_installed(lab: &Lab, node: &Node, c: &CniContainer) -> Ipv4Addr {
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(node.cni_conf.join("10-weavers.conflist")).unwrap()).unwrap();
    // What a runtime hands the plugin: its entry of the list, with the
    // list's name and version.
    let mut conf = list["plugins"][0].clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    let plugin = node.cni_bin.join(conf["type"].as_str().unwrap());
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.ns(c.host)]).arg(&plugin).env_clear();
    cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", &c.id)
        .env("CNI_NETNS", c.netns_path())
        .env("CNI_IFNAME", &c.ifname)
        .env("CNI_PATH", &node.cni_bin);
    let out = output_with_input(cmd, Some(conf.to_string().as_bytes()), 60 * SEC).unwrap();
    assert!(out.status.success(), "ADD: {}", String::from_utf8_lossy(&out.stdout));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let addr = result["ips"][0]["address"].as_str().unwrap();
    addr.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn the_entrypoint_run_as_the_daemonset_runs_it_gives_nodes_whose_pods_connect() {
    let Some(lab) = lab_or_skip(2) else { return };
    let mut procs = Procs::default();
    // The image's /usr/local/bin.
    let image_bin = lab.dir().join("image-bin");
    std::fs::create_dir_all(&image_bin).unwrap();
    for (name, path) in
        [("weaversd", bins::weaversd()), ("weavers", bins::weavers()), ("weavers-cni", bins::weavers_cni())]
    {
        std::os::unix::fs::symlink(path, image_bin.join(name)).unwrap();
    }
    let password = random_hex(16);
    let nodes: Vec<Node> = (1..=2)
        .map(|i| {
            let d = lab.dir().join(format!("node{i}-{}", random_hex(3)));
            let secret = d.join("secret");
            std::fs::create_dir_all(&secret).unwrap();
            let password_file = secret.join("password");
            std::fs::write(&password_file, &password).unwrap();
            std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o400)).unwrap();
            Node {
                cni_bin: d.join("opt/cni/bin"),
                cni_conf: d.join("etc/cni/net.d"),
                state: d.join("var/lib/weavers"),
                socket: d.join("run/weavers/weavers.sock"),
                password: password_file,
            }
        })
        .collect();

    for (k, node) in nodes.iter().enumerate() {
        let i = k + 1;
        // The init container.
        run(entrypoint(&lab, i, &image_bin, node, "", &["install-cni"]), "install-cni");
        let plugin = node.cni_bin.join("weavers-cni");
        assert_eq!(std::fs::metadata(&plugin).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(std::fs::read(&plugin).unwrap(), std::fs::read(bins::weavers_cni()).unwrap());
        let list: Value =
            serde_json::from_str(&std::fs::read_to_string(node.cni_conf.join("10-weavers.conflist")).unwrap()).unwrap();
        assert_eq!(list["plugins"][0]["socket"], node.socket.to_str().unwrap());
        let leftovers: Vec<_> = std::fs::read_dir(&node.cni_conf).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");

        // The daemon: node 1 with the ConfigMap's default (no peers), node 2
        // pointed at node 1.
        let peers = if i == 1 { String::new() } else { lab.ip(1).to_string() };
        let mut cmd = entrypoint(&lab, i, &image_bin, node, &peers, &["daemon"]);
        let log = std::fs::File::create(lab.dir().join(format!("node{i}.log"))).unwrap();
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        procs.0.push(cmd.spawn().unwrap());
    }
    let log = |i: usize| std::fs::read_to_string(lab.dir().join(format!("node{i}.log"))).unwrap_or_default();

    // The postStart hook and the liveness probe, on each node.
    for (k, node) in nodes.iter().enumerate() {
        let i = k + 1;
        let out = output_with_input(entrypoint(&lab, i, &image_bin, node, "", &["expose"]), None, 150 * SEC).unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "expose on node{i}: {}; log:\n{}", String::from_utf8_lossy(&out.stderr), log(i));
        assert!(text.trim().starts_with("10."), "expose printed {text:?}; log:\n{}", log(i));
        run(entrypoint(&lab, i, &image_bin, node, "", &["live"]), "live");
    }
    let connected = wait_until(30 * SEC, || {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", lab.ns(2)]).arg(bins::weavers()).args(["--json", "--socket"]).arg(&nodes[1].socket);
        let out = cmd.args(["peer", "ls"]).output().unwrap();
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| {
            v.as_array().is_some_and(|a| a.iter().any(|p| p["name"] == "node1" && p["state"] == "connected"))
        })
    });
    assert!(connected, "the nodes did not connect; logs:\n{}\n{}", log(1), log(2));

    // Pods: one per node through the installed plugin; they reach each other.
    let pods: Vec<(CniContainer, Ipv4Addr)> = (1..=2)
        .map(|i| {
            let c = new_container(&lab, i, "pod").unwrap();
            let addr = add_with_installed(&lab, &nodes[i - 1], &c);
            (c, addr)
        })
        .collect();
    assert!(wait_until(15 * SEC, || pods[0].0.ping(pods[1].1)), "pod on node1 cannot reach the pod on node2");

    // Every line the daemons logged is JSON (WEAVERS_LOG_FORMAT from the ConfigMap).
    for i in [1, 2] {
        for l in log(i).lines() {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("node{i} logged non-JSON ({e}): {l}"));
        }
    }

    // Pod termination: SIGTERM to the daemon (the entrypoint exec'd it).
    for (k, child) in procs.0.iter_mut().enumerate() {
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let stopped = wait_until(15 * SEC, || child.try_wait().ok().flatten().is_some());
        assert!(stopped, "node{} did not stop on SIGTERM", k + 1);
        assert!(child.wait().unwrap().success(), "node{}: log:\n{}", k + 1, log(k + 1));
    }
    let mut dead = entrypoint(&lab, 1, &image_bin, &nodes[0], "", &["live"]);
    assert!(!dead.output().unwrap().status.success(), "the liveness probe passes with no daemon");
}
