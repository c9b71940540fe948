//! Building a lab: the builder's options, the underlay namespace and bridge, the host namespaces.

use std::fs;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

use super::{restrict, HostSlot, Lab, NFT_TABLE};
use crate::netns;
use crate::random_hex;

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Options for a lab; see [`Lab::builder`].
#[derive(Clone, Debug)]
pub struct LabBuilder {
    hosts: usize,
    drop_multicast: bool,
    drop_fragments: bool,
    ipv6: bool,
    static_neighbours: bool,
}

impl LabBuilder {
    /// Whether the underlay bridge drops multicast frames (default: yes, as
    /// a cloud does). Can be changed later with
    /// [`Lab::set_underlay_multicast_drop`].
    pub fn drop_multicast(mut self, on: bool) -> Self {
        self.drop_multicast = on;
        self
    }

    /// Whether the underlay drops IPv4 fragments (default: yes, as many
    /// clouds and middleboxes do: weavers must never need them). Can be
    /// changed later with [`Lab::set_underlay_fragment_drop`].
    pub fn drop_fragments(mut self, on: bool) -> Self {
        self.drop_fragments = on;
        self
    }

    /// Whether IPv6 is enabled in the host namespaces (default: yes). With
    /// it off, the overlay carries no IPv6 chatter (DAD, MLD, RS), which
    /// makes frame counters quiet.
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Whether each host gets permanent neighbour entries (`ip neigh ...
    /// nud permanent`) for every other host's underlay address (default:
    /// no, hosts use ARP). Needed past about 30 hosts, where the machine's
    /// one neighbour table would overflow (see the module docs); it also
    /// keeps ARP off the underlay, so its byte counters show only what the
    /// daemons send.
    pub fn static_neighbours(mut self, on: bool) -> Self {
        self.static_neighbours = on;
        self
    }

    /// Builds the namespaces. On error, whatever was made is removed.
    pub fn build(self) -> Result<Lab> {
        if self.hosts == 0 || self.hosts > 250 {
            bail!("a lab has 1 to 250 hosts, not {}", self.hosts);
        }
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let prefix = format!("wv{pid}x{n}_");
        let dir = std::env::temp_dir().join(format!("weavers-lab-{pid}-{n}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let password = format!("lab-{}", random_hex(16));
        let password_file = dir.join("password");
        fs::write(&password_file, format!("{password}\n"))?;
        restrict(&password_file);
        let mut lab = Lab {
            underlay: format!("{prefix}u"),
            prefix,
            hosts: Vec::new(),
            dir,
            password,
            password_file,
            made: Vec::new(),
            bins_checked: false,
        };
        // On error, `lab` is dropped here, which removes what was made.
        lab.setup(&self)?;
        Ok(lab)
    }
}

impl Lab {
    /// A lab with `n` hosts and default options.
    pub fn new(n: usize) -> Result<Lab> {
        Self::builder(n).build()
    }

    /// A builder for a lab with `n` hosts.
    pub fn builder(n: usize) -> LabBuilder {
        LabBuilder { hosts: n, drop_multicast: true, drop_fragments: true, ipv6: true, static_neighbours: false }
    }

    fn setup(&mut self, opts: &LabBuilder) -> Result<()> {
        let u = self.underlay.clone();
        netns::add(&u).with_context(|| format!("create namespace {u}"))?;
        self.made.push(u.clone());
        netns::ip(&["-n", &u, "link", "add", "br0", "type", "bridge"])?;
        netns::ip(&["-n", &u, "link", "set", "br0", "up"])?;
        netns::nft_script(
            &u,
            &format!(
                "table bridge {NFT_TABLE} {{
                   set blocked_pairs {{ type ipv4_addr . ipv4_addr; }}
                   set blocked_udp {{ type inet_service; }}
                   chain mcast {{ type filter hook forward priority -10; policy accept; }}
                   chain nofrag {{ type filter hook forward priority -5; policy accept; }}
                   chain filter {{ type filter hook forward priority 0; policy accept;
                     ip saddr . ip daddr @blocked_pairs drop
                     udp dport @blocked_udp drop
                     udp sport @blocked_udp drop
                   }}
                 }}"
            ),
        )?;
        self.set_underlay_multicast_drop(opts.drop_multicast)?;
        self.set_underlay_fragment_drop(opts.drop_fragments)?;
        let ids: Vec<usize> = (1..=opts.hosts).collect();
        let made = std::sync::Mutex::new(Vec::new());
        let results = crate::par::map(&ids, crate::par::WORKERS, |&i| setup_host(&self.prefix, &u, i, opts, &made));
        // Everything made is recorded before any error is passed on, so that
        // dropping the lab removes it.
        let mut made = made.into_inner().unwrap_or_else(|p| p.into_inner());
        made.sort_by_key(|(i, _)| *i);
        self.made.extend(made.into_iter().map(|(_, ns)| ns));
        for (k, r) in results.into_iter().enumerate() {
            let ns = r?;
            self.hosts.push(HostSlot { ns, ip: host_ip(k + 1), daemon: None, opts: None, starts: 0 });
        }
        if opts.static_neighbours {
            let hosts: Vec<(usize, String)> =
                self.hosts.iter().enumerate().map(|(k, h)| (k + 1, h.ns.clone())).collect();
            let done = crate::par::map(&hosts, crate::par::WORKERS, |(i, ns)| {
                let mut lines = String::new();
                for j in (1..=opts.hosts).filter(|j| j != i) {
                    lines.push_str(&format!(
                        "neigh replace {} lladdr {} dev eth0 nud permanent\n",
                        host_ip(j),
                        host_mac(j)
                    ));
                }
                netns::ip_batch(Some(ns), &lines).with_context(|| format!("neighbour entries of h{i}"))
            });
            done.into_iter().collect::<Result<Vec<()>>>()?;
        }
        Ok(())
    }
}

/// The underlay address of host `i`.
fn host_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, i as u8)
}

/// The MAC address of host `i`'s `eth0` (locally administered).
fn host_mac(i: usize) -> String {
    format!("02:99:00:00:{:02x}:{:02x}", i >> 8, i & 0xff)
}

/// Makes host `i`'s namespace and its veth to the underlay bridge; records
/// the namespace in `made` as soon as it exists. Returns its name.
fn setup_host(
    prefix: &str,
    underlay: &str,
    i: usize,
    opts: &LabBuilder,
    made: &std::sync::Mutex<Vec<(usize, String)>>,
) -> Result<String> {
    let ns = format!("{prefix}h{i}");
    netns::add(&ns).with_context(|| format!("create namespace {ns}"))?;
    made.lock().unwrap_or_else(|p| p.into_inner()).push((i, ns.clone()));
    if !opts.ipv6 {
        netns::sysctl(&ns, "net.ipv6.conf.all.disable_ipv6", "1")?;
        netns::sysctl(&ns, "net.ipv6.conf.default.disable_ipv6", "1")?;
    }
    // AEX's engine, recorder and view join 100 groups on one socket
    // (the default limit is 20 per socket).
    netns::sysctl(&ns, "net.ipv4.igmp_max_memberships", "1024")?;
    let port = format!("v{i}");
    let mac = host_mac(i);
    netns::ip(&[
        "-n", underlay, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "address", &mac, "netns", &ns,
    ])?;
    netns::ip(&["-n", underlay, "link", "set", &port, "master", "br0", "up"])?;
    netns::ip_batch(Some(&ns), &format!("addr add {}/24 dev eth0\nlink set eth0 up\n", host_ip(i)))?;
    Ok(ns)
}
