//! A vhost-user server socket left behind by a daemon that died (SIGKILL, a crash):
//! the file stays, nobody listens on it, and DPDK's vhost library cannot bind over it,
//! so the restarted daemon would never serve its guests again (QEMU, reconnecting
//! every second, waits on that path). Such a socket is removed before the port opens;
//! one that answers belongs to a live process and is left alone.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// The server socket path of a `net_vhost` port's devargs (`iface=PATH`, not
/// `client=1`), if it is one.
pub fn server_socket(devargs: &str) -> Option<PathBuf> {
    let mut parts = devargs.split(',');
    if !parts.next()?.trim().starts_with("net_vhost") {
        return None;
    }
    let mut iface = None;
    for kv in parts {
        match kv.trim().split_once('=') {
            Some(("iface", p)) => iface = Some(PathBuf::from(p)),
            Some(("client", v)) if v.trim() == "1" => return None,
            _ => {}
        }
    }
    iface
}

/// Removes `devargs`' vhost-user server socket when nothing listens on it; returns the
/// path removed. A path that is not a socket, or a socket that answers, is kept.
#[cold]
pub fn clear_stale(devargs: &str) -> Option<PathBuf> {
    let path = server_socket(devargs)?;
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.file_type().is_socket() {
        return None;
    }
    match UnixStream::connect(&path) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            std::fs::remove_file(&path).ok()?;
            log::warn!(
                "removed the stale vhost-user socket {} (nothing listened on it)",
                path.display()
            );
            Some(path)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn only_a_vhost_server_socket_is_named() {
        let p = server_socket("net_vhost0,iface=/run/a.sock,client=0,tso=1");
        assert_eq!(p, Some(PathBuf::from("/run/a.sock")));
        assert_eq!(server_socket("net_vhost1,iface=/run/a.sock,client=1"), None);
        assert_eq!(server_socket("net_af_packet0,iface=eth0"), None);
        assert_eq!(server_socket("net_vhost0,queues=2"), None);
    }

    #[test]
    fn a_socket_nobody_listens_on_is_removed_and_a_live_one_kept() {
        let dir = std::env::temp_dir().join(format!("wrenvnet-vhost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (live, dead) = (dir.join("live.sock"), dir.join("dead.sock"));
        let _listener = UnixListener::bind(&live).unwrap();
        drop(UnixListener::bind(&dead).unwrap()); // the file stays, nobody listens
        let args = |p: &PathBuf| format!("net_vhost0,iface={},client=0", p.display());
        assert_eq!(clear_stale(&args(&live)), None);
        assert!(live.exists());
        assert_eq!(clear_stale(&args(&dead)), Some(dead.clone()));
        assert!(!dead.exists());
        // A regular file of that name is not ours to remove.
        std::fs::write(&dead, b"x").unwrap();
        assert_eq!(clear_stale(&args(&dead)), None);
        assert!(dead.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
