//! `weavers-cni`: run by a container runtime (CNI 1.1). See the library
//! docs (`weavers_cni`) for what each command does.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let limit = weavers_cni::config::MAX_CONFIG_LEN as u64 + 1;
    let stdin_error = std::io::stdin().lock().take(limit).read_to_end(&mut stdin).err().map(|e| e.to_string());
    let outcome = weavers_cni::run(&stdin, stdin_error, &|k| std::env::var(k).ok());
    let mut out = std::io::stdout().lock();
    if !outcome.stdout.is_empty() {
        let _ = writeln!(out, "{}", outcome.stdout);
    }
    let _ = out.flush();
    if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
