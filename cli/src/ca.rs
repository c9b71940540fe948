//! `weavers ca`: the network authority's files and what it signs. Only
//! `revoke` talks to a daemon.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use weavers_cert::{unix_now, Authority, AuthorityKey, GroupRange, NamePattern, Permissions, Revocation};

use crate::cli::{CaInitArgs, CaSignArgs};

/// The authority's private key in its directory.
pub const KEY_FILE: &str = "ca.key";
/// The authority's certificate in its directory.
pub const CERT_FILE: &str = "ca.crt";

/// `ca init`: makes DIR (0700) with ca.key (0600) and ca.crt; the text
/// printed.
pub fn init(args: &CaInitArgs) -> Result<String, String> {
    let dir = &args.dir;
    let key_path = dir.join(KEY_FILE);
    if key_path.exists() {
        return Err(format!("{} exists: refusing to replace an authority", key_path.display()));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key = AuthorityKey::generate();
    let cert = key.self_certify(&args.name, unix_now(), args.days).map_err(|e| e.to_string())?;
    write_new(&key_path, key.to_text().as_bytes(), 0o600)?;
    write_new(&dir.join(CERT_FILE), cert.to_text().as_bytes(), 0o644)?;
    Ok(format!(
        "made the authority {:?} in {}\n  {} private key: keep it here, off the hosts\n  {} certificate: give it to every host (weaversd --ca)\n",
        args.name,
        dir.display(),
        key_path.display(),
        dir.join(CERT_FILE).display()
    ))
}

/// Writes a file that must not exist yet, with `mode`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The authority in `dir`: its key and certificate, checked to match.
fn load(dir: &Path) -> Result<(AuthorityKey, Authority), String> {
    let key = AuthorityKey::from_text(&read(&dir.join(KEY_FILE))?)
        .map_err(|e| format!("{}: {e}", dir.join(KEY_FILE).display()))?;
    let cert = Authority::from_text(&read(&dir.join(CERT_FILE))?)
        .map_err(|e| format!("{}: {e}", dir.join(CERT_FILE).display()))?;
    if cert.key() != &key.public() {
        return Err(format!("{} and {} do not belong together", KEY_FILE, CERT_FILE));
    }
    Ok((key, cert))
}

/// `ca sign`: the certificate's text.
pub fn sign(args: &CaSignArgs) -> Result<String, String> {
    let (key, authority) = load(&args.dir)?;
    let public =
        B64.decode(args.public_key.trim()).ok().and_then(|v| <[u8; 32]>::try_from(v).ok()).ok_or_else(|| {
            "--public-key: expected the 44-character base64 key weaversd --print-public-key prints".to_owned()
        })?;
    let permissions = Permissions {
        publish: args
            .publish
            .as_deref()
            .map(GroupRange::parse_list)
            .transpose()
            .map_err(|e| format!("--publish: {e}"))?,
        subscribe: args
            .subscribe
            .as_deref()
            .map(GroupRange::parse_list)
            .transpose()
            .map_err(|e| format!("--subscribe: {e}"))?,
        names: args.names.as_deref().map(NamePattern::parse_list).transpose().map_err(|e| format!("--names: {e}"))?,
    };
    let now = unix_now();
    if now.saturating_add(u64::from(args.days) * 86_400) > authority.not_after() {
        eprintln!("weavers: warning: the certificate outlives the authority's own (it stops being accepted when that expires)");
    }
    let cert = key.sign_host(&args.name, public, permissions, now, args.days).map_err(|e| e.to_string())?;
    Ok(cert.to_text())
}

/// `ca revoke`, the part without the daemon: the revocation, signed and
/// saved in DIR/revoked/NAME.rev.
pub fn revoke(dir: &Path, name: &str) -> Result<(Revocation, PathBuf), String> {
    let (key, _) = load(dir)?;
    let rev = key.revoke(name, unix_now()).map_err(|e| e.to_string())?;
    let revoked = dir.join("revoked");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&revoked)
        .map_err(|e| format!("cannot create {}: {e}", revoked.display()))?;
    // The name is checked (visible ASCII, no spaces); keep it a file name.
    let file = revoked.join(format!("{}.rev", name.replace('/', "_")));
    fs::write(&file, rev.to_text()).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok((rev, file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weavers_cert::HostCert;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("weavers-ca-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn init_sign_revoke_make_files_a_host_can_check() {
        let dir = tmp("flow");
        init(&CaInitArgs { dir: dir.clone(), name: "net".into(), days: 10 }).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(init(&CaInitArgs { dir: dir.clone(), name: "net".into(), days: 10 }).is_err(), "no overwrite");
        let args = CaSignArgs {
            dir: dir.clone(),
            name: "h1".into(),
            public_key: B64.encode([9u8; 32]),
            publish: Some("239.1.0.0/16".into()),
            subscribe: None,
            names: Some("*.md.aex".into()),
            days: 5,
        };
        let cert = HostCert::from_text(&sign(&args).unwrap()).unwrap();
        let ca = Authority::from_text(&fs::read_to_string(dir.join(CERT_FILE)).unwrap()).unwrap();
        cert.verify(&ca, unix_now()).unwrap();
        assert_eq!(cert.body().public_key, [9u8; 32]);
        assert!(cert.permissions().may_publish("239.1.2.3".parse().unwrap()));
        assert!(!cert.permissions().may_publish("239.2.2.3".parse().unwrap()));
        assert!(cert.permissions().may_subscribe("239.2.2.3".parse().unwrap()));
        let bad = CaSignArgs { public_key: "short".into(), ..args };
        assert!(sign(&bad).unwrap_err().contains("--public-key"));
        let (rev, file) = revoke(&dir, "h1").unwrap();
        assert!(rev.revokes(&cert));
        assert_eq!(Revocation::from_text(&fs::read_to_string(file).unwrap(), &ca).unwrap(), rev);
        fs::remove_dir_all(&dir).unwrap();
    }
}
