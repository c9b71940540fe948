//! Man pages and shell completions for weavers' binaries, generated from
//! each one's clap command so they never drift from `--help`.
//!
//! Each binary (`weaversd`, `weavers`, `aex`) calls [`generate_if_asked`]
//! first thing in `main`: `BINARY --generate-docs OUTDIR` writes
//!
//! ```text
//! OUTDIR/man1/BINARY.1, BINARY-SUBCOMMAND.1, ...   (one page per subcommand)
//! OUTDIR/completions/bash/BINARY
//! OUTDIR/completions/zsh/_BINARY
//! OUTDIR/completions/fish/BINARY.fish
//! ```
//!
//! and exits. The option is not part of the binaries' grammar (it appears in
//! no help, page or completion); `dist/gen-docs.sh OUTDIR` runs all three.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The argument that asks for the documents (only as the first argument).
pub const FLAG: &str = "--generate-docs";

/// If the first argument is [`FLAG`], writes the man pages and completions
/// of `command()` under the directory that follows it and exits the process
/// (status 0, or 1 with a message on stderr). Otherwise returns.
pub fn generate_if_asked(command: impl FnOnce() -> clap::Command) {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_none_or(|a| a != FLAG) {
        return;
    }
    let cmd = command();
    let name = cmd.get_name().to_owned();
    let result = match (args.next(), args.next()) {
        (Some(dir), None) => generate(cmd, Path::new(&dir)).map_err(|e| e.to_string()),
        _ => Err(format!("usage: {name} {FLAG} OUTDIR")),
    };
    match result {
        Ok(files) => {
            let mut out = std::io::stdout().lock();
            for f in files {
                let _ = writeln!(out, "{}", f.display());
            }
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{name}: {FLAG}: {e}");
            std::process::exit(1)
        }
    }
}

/// Writes the man pages and completions of `cmd` under `out` (see the module
/// docs for the layout); returns the files written.
pub fn generate(cmd: clap::Command, out: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = out.join("man1");
    std::fs::create_dir_all(&man_dir)?;
    let mut man_cmd = cmd.clone().disable_help_subcommand(true);
    man_cmd.build();
    let version = man_cmd.get_version().unwrap_or_default().to_owned();
    man_pages(man_cmd, &man_dir, &version, &mut written)?;

    let name = cmd.get_name().to_owned();
    for (shell, file) in
        [(Shell::Bash, name.clone()), (Shell::Zsh, format!("_{name}")), (Shell::Fish, format!("{name}.fish"))]
    {
        let dir = out.join("completions").join(shell.to_string());
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut buf);
        std::fs::write(&path, buf)?;
        written.push(path);
    }
    Ok(written)
}

/// One page for `cmd` and one for each visible subcommand, recursively
/// (`weavers-peer-add.1`).
fn man_pages(cmd: clap::Command, dir: &Path, version: &str, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        man_pages(sub, dir, version, written)?;
    }
    let man = clap_mangen::Man::new(cmd).source(format!("weavers {version}")).manual("weavers");
    written.push(man.generate_to(dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    #[test]
    fn writes_a_page_per_subcommand_and_three_completions() {
        let cmd = Command::new("demo")
            .version("1.2.3")
            .about("A demo")
            .arg(Arg::new("socket").long("socket").help("The socket"))
            .subcommand(Command::new("peer").about("Peers").subcommand(Command::new("ls").about("List peers")))
            .subcommand(Command::new("secret").hide(true));
        let out = std::env::temp_dir().join(format!("weavers-docgen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let files = generate(cmd, &out).unwrap();
        let names: Vec<String> = files.iter().map(|f| f.strip_prefix(&out).unwrap().display().to_string()).collect();
        assert_eq!(
            names,
            [
                "man1/demo-peer-ls.1",
                "man1/demo-peer.1",
                "man1/demo.1",
                "completions/bash/demo",
                "completions/zsh/_demo",
                "completions/fish/demo.fish"
            ]
        );
        let page = std::fs::read_to_string(out.join("man1/demo.1")).unwrap();
        assert!(page.contains(".TH demo 1") && page.contains("weavers 1.2.3"), "{page}");
        assert!(page.contains("\\-\\-socket") && page.contains("demo\\-peer(1)"), "{page}");
        assert!(!page.contains("secret"), "a hidden subcommand is documented: {page}");
        let fish = std::fs::read_to_string(out.join("completions/fish/demo.fish")).unwrap();
        assert!(fish.contains("-l socket") && fish.contains("peer"), "{fish}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}
