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

    /// List peers: name, public key, endpoint, state, relay, RTT, frames
    #[command(
        visible_alias = "list",
        long_about = "List the peers this host knows: name, public key (shortened; \
            --json has it whole), underlay endpoint, state (connected, relayed, \
            connecting, unreachable), the next hop when relayed, round-trip time in \
            milliseconds, and the overlay frames sent to and received from it.\n\n\
            With --json: the daemon's array of PeerInfo objects."
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
    fn unknown_commands_are_usage_errors() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["status", "--bogus"]).is_err());
    }
}
