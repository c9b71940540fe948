//! The command line grammar (clap derive). New commands (`groups`, `dns`,
//! `ipam`) go into [`Command`] as one more variant each, with their own
//! subcommand enum where they have several verbs, like [`PeerCommand`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where `weaversd` listens by default.
pub const DEFAULT_SOCKET: &str = "/run/weavers/weavers.sock";

#[derive(Debug, Parser)]
#[command(
    name = "weavers",
    version,
    about = "Control the weavers overlay daemon (weaversd) on this host",
    long_about = "Control the weavers overlay daemon (weaversd) on this host.\n\n\
        weavers talks to the daemon over its control socket, which only root may \
        open: run it as root or with sudo. Exit status: 0 on success, 1 when the \
        daemon is not running or refused the request, 2 on a usage error.",
    propagate_version = true
)]
pub struct Cli {
    /// The daemon's control socket (weaversd --socket)
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "WEAVERS_SOCKET",
        default_value = DEFAULT_SOCKET
    )]
    pub socket: PathBuf,

    /// Print the daemon's JSON answer instead of a table, for scripts
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Show this peer, its peers and their state, and drop and handshake counters
    #[command(long_about = "Show this peer (name, public key, listen address, bridge, \
        overlay MTU and address), then every known peer with its state, then the \
        configured addresses not yet connected, the handshake counts and the \
        non-zero drop counters.\n\nWith --json: the daemon's Status object.")]
    Status,

    /// Add, remove or list peers
    #[command(subcommand)]
    Peer(PeerCommand),

    /// Give this host an overlay address on the bridge and print it
    #[command(long_about = "Give this host an address on the overlay bridge, so that \
        programs on the host (not only containers) reach the overlay, and print the \
        address with its prefix length (e.g. 10.32.0.1/12).\n\n\
        Without CIDR the daemon picks a free address in its --ipalloc-range. \
        It also routes 224.0.0.0/4 (and ff00::/8) through the bridge when no such \
        route exists, so ordinary multicast programs work unchanged.\n\n\
        With --json: the daemon's answer, {\"address\", \"multicast_route_added\"}.")]
    Expose(ExposeArgs),

    /// Multicast groups: local members, subscribed peers, counters
    #[command(long_about = "List every multicast group this host knows of: the members \
        on this host's bridge (learned from their IGMP/MLD reports, with source filters and \
        expiry), the peers that asked for the group, and the traffic counters (frames from \
        local senders, copies sent per peer, frames delivered from peers, frames dropped \
        because no peer listens).\n\nWith --json: an array of the daemon's GroupInfo objects.")]
    Groups,

    /// Names under weavers.local: add, remove, list, look up
    #[command(
        subcommand,
        long_about = "Names under weavers.local, answered by the DNS server every host runs on its \
            overlay address (port 53, UDP and TCP; it starts with `weavers expose`).\n\n\
            A name added on one host resolves on every host; a name with several addresses is \
            answered in rotating order. Names are case-insensitive and may be given with or \
            without the .weavers.local suffix."
    )]
    Dns(DnsCommand),

    /// The shared address range: who owns which part, this host's allocations
    #[command(subcommand)]
    Ipam(IpamCommand),

    /// Ping a peer through the overlay: its path (direct or relayed), RTT, MTU
    #[command(long_about = "Send one ping through the encrypted session to PEER (a name or a \
        public key, as `weavers peer ls` shows them) and print its path (direct, or relayed \
        through which peer), the underlay endpoint, the round trip and the overlay MTU. For a \
        relayed peer the round trip is to the relay (pings travel between direct peers only). \
        Exits 1 when the peer is unknown, has no path, or does not answer within 2 s.\n\n\
        With --json: the daemon's PingResult object.")]
    Ping(PingArgs),

    /// A live view of peers and groups: rates and drops, refreshed
    #[command(long_about = "Redraw, every interval, this host's peers (state, round trip, frames and \
        bytes a second each way) and groups (local members, subscribed peers, frames a second from \
        local senders, copies sent, frames delivered, frames dropped or refused) and the drop \
        counters that moved, from the difference of two readings of the daemon's counters. \
        Ctrl-C stops it. Not a terminal: plain pages one after another.")]
    Top(TopArgs),

    /// Write one file with what a bug report needs (no secrets)
    #[command(long_about = "Write one text file holding this command's version, the daemon's \
        status, peers, groups, IPAM, DNS and revocations, the host's links, addresses, routes, \
        multicast memberships and bridge ports, and the daemon's last 500 log lines from journald; \
        never the password, the identity key or the configuration file. Parts that cannot be had \
        (the daemon is down) say why; the rest is still written. The file is mode 0600.")]
    Bugreport(BugreportArgs),

    /// Network passwords (needs no daemon)
    #[command(subcommand)]
    Password(PasswordCommand),

    /// A network authority: make it, sign host certificates, revoke them
    #[command(
        subcommand,
        long_about = "A network authority decides who may join the mesh and what each host may do \
            in it. `ca init` makes its key and certificate, `ca sign` prints a certificate for one \
            host (its name, its public key from `weaversd --print-public-key`, the multicast groups \
            it may publish to and subscribe to, the names it may register), `ca revoke` voids a \
            host's certificates on every host. Hosts run with `weaversd --ca ca.crt --cert \
            HOST.crt` and accept only peers with a valid, unexpired, unrevoked certificate from \
            the same authority.\n\n\
            Keep DIR (its ca.key) off the hosts: only ca.crt goes to them."
    )]
    Ca(CaCommand),
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct TopArgs {
    /// Seconds between pages (1 to 3600)
    #[arg(long, short = 'i', value_name = "SECONDS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    /// Stop after this many pages
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct BugreportArgs {
    /// Where to write it [default: ./weavers-bugreport-UNIXTIME.txt]
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct PingArgs {
    /// The peer's name or public key
    #[arg(value_name = "PEER")]
    pub peer: String,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum CaCommand {
    /// Make a new authority in DIR: DIR/ca.key (mode 0600) and DIR/ca.crt
    #[command(long_about = "Make a new authority in DIR (created, mode 0700): its private key \
        DIR/ca.key (mode 0600; keep it off the hosts) and its certificate DIR/ca.crt (give it \
        to every host with --ca). Refuses to overwrite an existing authority. Talks to no daemon.")]
    Init(CaInitArgs),

    /// Print a certificate for one host, signed by the authority in DIR
    #[command(long_about = "Print a host certificate signed by the authority in DIR: the host's \
        NAME (what peers list it as, and what `ca revoke` names), its public key (the line \
        `weaversd --print-public-key` prints), what it may do, and how long it is valid. \
        CIDRS are comma-separated multicast group ranges (239.1.0.0/16,ff0e::/16); without \
        --publish or --subscribe the host may use every group. PATTERNS are comma-separated \
        names under weavers.local where `*` stands for one label (*.md.aex); without --names \
        any name. Save the output as the host's --cert file. Talks to no daemon.\n\n\
        To renew, sign again and replace the file: the daemon reads it again every minute \
        (and on SIGHUP); old and new certificates are both valid until the old one expires.")]
    Sign(CaSignArgs),

    /// Void a host's certificates everywhere: signs a revocation and hands it to the daemon
    #[command(long_about = "Void every certificate issued to NAME up to now: signs a revocation \
        with the authority in DIR, saves it in DIR/revoked/NAME.rev, and hands it to the daemon \
        on this host (--socket), which passes it to every host; each drops its sessions with \
        NAME's host at once and refuses it from then on, across restarts. A certificate signed \
        for NAME after the revocation is valid again. Exits 1 if the daemon did not take it \
        (the revocation is saved; run the command again where a daemon runs).")]
    Revoke(CaRevokeArgs),
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct CaInitArgs {
    /// The directory to make the authority in
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The authority's name, shown in its certificate
    #[arg(long, value_name = "NAME", default_value = "weavers")]
    pub name: String,
    /// Days the authority's certificate is valid
    #[arg(long, value_name = "N", default_value_t = 3650)]
    pub days: u32,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct CaSignArgs {
    /// The authority's directory (from `ca init`)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The host's name (1 to 64 visible ASCII characters)
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The host's public key, as `weaversd --print-public-key` prints it
    #[arg(long, value_name = "KEY")]
    pub public_key: String,
    /// Group ranges the host may send to (default: all groups)
    #[arg(long, value_name = "CIDRS")]
    pub publish: Option<String>,
    /// Group ranges the host may receive (default: all groups)
    #[arg(long, value_name = "CIDRS")]
    pub subscribe: Option<String>,
    /// Names under weavers.local the host may register (default: any)
    #[arg(long, value_name = "PATTERNS")]
    pub names: Option<String>,
    /// Days the certificate is valid
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct CaRevokeArgs {
    /// The authority's directory
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The host name whose certificates are void
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum PasswordCommand {
    /// Print a new strong network password
    #[command(long_about = "Print a new strong network password: 32 random bytes from the \
        operating system's generator, in URL-safe base64 (43 characters), on one line and \
        nothing else, so that\n\n    \
        weavers password generate > /etc/weavers/password\n\n\
        makes the password file (then chmod 600 it and copy it to every host of the network). \
        Talks to no daemon.\n\n\
        With --json: {\"password\": \"...\"}.")]
    Generate,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum IpamCommand {
    /// Show the range, which peer owns which span, this host's allocations
    /// and free count, and any conflict
    #[command(visible_alias = "list")]
    Ls,
    /// Take over the space of a peer that is gone for good (as `weave
    /// rmpeer` did). Only for a peer that will never come back: its
    /// containers' addresses become free for others.
    Rmpeer(RmpeerArgs),
}

#[derive(Debug, PartialEq, Eq, clap::Args)]
pub struct RmpeerArgs {
    /// The dead peer's name or public key
    pub peer: String,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum DnsCommand {
    /// Give NAME the address ADDR, on every host (add it again for more addresses)
    #[command(long_about = "Give NAME (in weavers.local) the address ADDR, an IPv4 or IPv6 \
        address (a multicast group is fine: `weavers dns add AAPL.orders.aex 239.1.0.1`). \
        Every host answers for it within a second. Adding a name again with another \
        address gives it several, answered in rotating order. This host publishes the \
        entry and keeps it across restarts.\n\n\
        With --json: the daemon's DnsEntryInfo object.")]
    Add(DnsAddArgs),

    /// Remove NAME (all its addresses, or only ADDR), whichever host added it
    #[command(
        visible_alias = "remove",
        long_about = "Remove NAME from weavers.local: all its addresses, or only ADDR; or, with \
            --owner, everything that owner registered. Works on any host, for entries any \
            host added; every host stops answering within two seconds. Removing what is \
            not there is not an error.\n\n\
            With --json: the daemon's answer, {\"removed\": [DnsEntryInfo...]}."
    )]
    Rm(DnsRmArgs),

    /// List every name: address, the host that added it, owner
    #[command(
        visible_alias = "list",
        long_about = "List every name under weavers.local that this host answers for, one row \
            per address: the name, the address, the host that added it and the owner tag.\n\n\
            With --json: an array of the daemon's DnsRecordInfo objects \
            ({name, addrs, origin, origin_key, owner})."
    )]
    Ls,

    /// Print the addresses of NAME in the order a DNS query now gets them
    #[command(long_about = "Print the addresses of NAME, one a line, in the order this host's \
        DNS server answers a query for it now (the A answer, then the AAAA answer); like a \
        query, this moves the rotation on. Exits 1 when there is no such name.\n\n\
        With --json: the daemon's DnsLookup object {name, addrs}.")]
    Lookup(DnsNameArg),

    /// The DNS server: where it listens and what it answered
    #[command(long_about = "Show where this host's DNS server listens, its upstream server, \
        how many entries it knows, and its counters: queries by transport, answers, \
        NXDOMAIN, REFUSED, malformed queries (FORMERR, dropped), forwarded queries.\n\n\
        With --json: the daemon's DnsStats object.")]
    Stats,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct DnsAddArgs {
    /// The name, e.g. AAPL.orders.aex or web.weavers.local
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Its address, IPv4 or IPv6
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// A tag to remove the entry by later, together with all others it tags
    #[arg(long, value_name = "TAG")]
    pub owner: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct DnsRmArgs {
    /// The name to remove
    #[arg(value_name = "NAME", required_unless_present = "owner")]
    pub name: Option<String>,
    /// Only this address of the name
    #[arg(value_name = "ADDR", requires = "name")]
    pub addr: Option<String>,
    /// Remove everything registered with this owner tag (with NAME: only that name's)
    #[arg(long, value_name = "TAG")]
    pub owner: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct DnsNameArg {
    /// The name, e.g. AAPL.orders.aex or web.weavers.local
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum PeerCommand {
    /// Connect to peers now, and remember them across restarts
    #[command(long_about = "Connect to peers now, and remember them across restarts.\n\n\
        Each address is a host name or IP address with an optional UDP port \
        (default 6783); write IPv6 with a port as [ADDR]:PORT. Prints each address \
        the daemon added.")]
    Add(PeerAddrsArgs),

    /// Forget peers (by the address they were added with)
    #[command(visible_alias = "remove")]
    Rm(PeerAddrsArgs),

    /// List peers: name, public key, endpoint, state, relay, RTT, last handshake, bytes
    #[command(
        visible_alias = "list",
        long_about = "List the peers this host knows: name, public key (shortened; \
            --json has it whole), underlay endpoint, state (connected, relayed, \
            connecting, unreachable), the next hop when relayed, round-trip time in \
            milliseconds, how long ago the last handshake with it completed (renewed \
            at least every 2 minutes), and the overlay bytes sent to and received \
            from it.\n\n\
            With --json: the daemon's array of PeerInfo objects (with session_age_s, \
            and frames and bytes each way)."
    )]
    Ls,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct PeerAddrsArgs {
    /// Peer addresses: HOST, HOST:PORT, IP, IP:PORT or [IPv6]:PORT
    #[arg(required = true, value_name = "HOST[:PORT]")]
    pub addrs: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, Args)]
pub struct ExposeArgs {
    /// Address with prefix length to use, e.g. 10.32.0.1/12 (default: the daemon picks one)
    #[arg(value_name = "CIDR")]
    pub cidr: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("weavers").chain(args.iter().copied()))
    }

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn status_with_defaults() {
        let cli = parse(&["status"]).unwrap();
        assert_eq!(cli.command, Command::Status);
        assert!(!cli.json);
        // The default unless WEAVERS_SOCKET is set where the tests run.
        if std::env::var_os("WEAVERS_SOCKET").is_none() {
            assert_eq!(cli.socket, PathBuf::from(DEFAULT_SOCKET));
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        for args in [
            &["--socket", "/tmp/x.sock", "--json", "peer", "ls"][..],
            &["peer", "ls", "--json", "--socket", "/tmp/x.sock"][..],
            &["peer", "--socket=/tmp/x.sock", "list", "--json"][..],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.command, Command::Peer(PeerCommand::Ls), "{args:?}");
            assert!(cli.json);
            assert_eq!(cli.socket, PathBuf::from("/tmp/x.sock"));
        }
    }

    #[test]
    fn peer_add_and_rm_take_one_or_more_addresses() {
        let cli = parse(&["peer", "add", "10.0.0.2", "b.example:6783", "[2001:db8::1]:7"]).unwrap();
        assert_eq!(
            cli.command,
            Command::Peer(PeerCommand::Add(PeerAddrsArgs {
                addrs: vec!["10.0.0.2".into(), "b.example:6783".into(), "[2001:db8::1]:7".into()]
            }))
        );
        let cli = parse(&["peer", "remove", "b"]).unwrap();
        assert_eq!(cli.command, Command::Peer(PeerCommand::Rm(PeerAddrsArgs { addrs: vec!["b".into()] })));
        assert!(parse(&["peer", "add"]).is_err());
        assert!(parse(&["peer", "rm"]).is_err());
        assert!(parse(&["peer"]).is_err());
        assert!(parse(&["peer", "ls", "extra"]).is_err());
    }

    #[test]
    fn expose_takes_an_optional_cidr() {
        assert_eq!(parse(&["expose"]).unwrap().command, Command::Expose(ExposeArgs { cidr: None }));
        assert_eq!(
            parse(&["expose", "10.32.0.1/12"]).unwrap().command,
            Command::Expose(ExposeArgs { cidr: Some("10.32.0.1/12".into()) })
        );
        assert!(parse(&["expose", "a", "b"]).is_err());
    }

    #[test]
    fn dns_commands() {
        assert_eq!(
            parse(&["dns", "add", "AAPL.orders.aex", "239.1.0.1"]).unwrap().command,
            Command::Dns(DnsCommand::Add(DnsAddArgs {
                name: "AAPL.orders.aex".into(),
                addr: "239.1.0.1".into(),
                owner: None
            }))
        );
        assert_eq!(
            parse(&["dns", "add", "--owner", "c1", "web", "fd00::1"]).unwrap().command,
            Command::Dns(DnsCommand::Add(DnsAddArgs {
                name: "web".into(),
                addr: "fd00::1".into(),
                owner: Some("c1".into())
            }))
        );
        assert_eq!(
            parse(&["dns", "rm", "web", "10.0.0.1"]).unwrap().command,
            Command::Dns(DnsCommand::Rm(DnsRmArgs {
                name: Some("web".into()),
                addr: Some("10.0.0.1".into()),
                owner: None
            }))
        );
        assert_eq!(
            parse(&["dns", "remove", "--owner", "c1"]).unwrap().command,
            Command::Dns(DnsCommand::Rm(DnsRmArgs { name: None, addr: None, owner: Some("c1".into()) }))
        );
        assert_eq!(parse(&["dns", "list", "--json"]).unwrap().command, Command::Dns(DnsCommand::Ls));
        assert_eq!(
            parse(&["dns", "lookup", "web"]).unwrap().command,
            Command::Dns(DnsCommand::Lookup(DnsNameArg { name: "web".into() }))
        );
        assert_eq!(parse(&["dns", "stats"]).unwrap().command, Command::Dns(DnsCommand::Stats));
        assert!(parse(&["dns", "add", "web"]).is_err());
        assert!(parse(&["dns", "rm"]).is_err());
        assert!(parse(&["dns", "lookup"]).is_err());
        assert!(parse(&["dns"]).is_err());
    }

    #[test]
    fn password_generate() {
        assert_eq!(parse(&["password", "generate"]).unwrap().command, Command::Password(PasswordCommand::Generate));
        assert!(parse(&["password"]).is_err());
        assert!(parse(&["password", "generate", "extra"]).is_err());
    }

    #[test]
    fn ping_takes_one_peer() {
        assert_eq!(parse(&["ping", "h2"]).unwrap().command, Command::Ping(PingArgs { peer: "h2".into() }));
        assert!(parse(&["ping"]).is_err());
        assert!(parse(&["ping", "a", "b"]).is_err());
    }

    #[test]
    fn ca_commands() {
        assert_eq!(
            parse(&["ca", "init", "/tmp/ca"]).unwrap().command,
            Command::Ca(CaCommand::Init(CaInitArgs { dir: "/tmp/ca".into(), name: "weavers".into(), days: 3650 }))
        );
        let Command::Ca(CaCommand::Sign(a)) = parse(&[
            "ca",
            "sign",
            "d",
            "--name",
            "h1",
            "--public-key",
            "K",
            "--publish",
            "239.1.0.0/16",
            "--days",
            "7",
        ])
        .unwrap()
        .command
        else {
            panic!("not a sign command")
        };
        assert_eq!((a.name.as_str(), a.publish.as_deref(), a.subscribe, a.days), ("h1", Some("239.1.0.0/16"), None, 7));
        assert!(parse(&["ca", "sign", "d", "--name", "h1"]).is_err(), "the key is required");
        assert_eq!(
            parse(&["ca", "revoke", "d", "h1"]).unwrap().command,
            Command::Ca(CaCommand::Revoke(CaRevokeArgs { dir: "d".into(), name: "h1".into() }))
        );
    }

    #[test]
    fn unknown_commands_are_usage_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["status", "--bogus"]).is_err());
    }
}
