//! `tend install-supervisor-links DIR`: `supervisord` and `pidproxy` in DIR
//! as links to this tend, so that a systemd unit, a Dockerfile or a script
//! that runs them runs tend (which chooses by `argv[0]`, as busybox does).

use std::path::Path;
use std::process::ExitCode;

/// The programs tend stands in for.
const PROGRAMS: [&str; 2] = ["supervisord", "pidproxy"];

/// Makes the links; an existing file of that name is left alone (an error)
/// unless it already is such a link, or `force` is given.
pub fn install(dir: &Path, force: bool) -> ExitCode {
    let exe = match std::env::current_exe().and_then(|e| e.canonicalize()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find this program's path: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !dir.is_dir() {
        eprintln!("error: {} is not a directory", dir.display());
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    for name in PROGRAMS {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(_) => {
                let ours = std::fs::canonicalize(&link).is_ok_and(|t| t == exe);
                if ours {
                    println!("{} -> {} (already)", link.display(), exe.display());
                    continue;
                }
                if !force {
                    eprintln!(
                        "error: {} exists and is not a link to {} (remove it, or use --force)",
                        link.display(),
                        exe.display()
                    );
                    ok = false;
                    continue;
                }
                if let Err(e) = std::fs::remove_file(&link) {
                    eprintln!("error: cannot remove {}: {e}", link.display());
                    ok = false;
                    continue;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                eprintln!("error: {}: {e}", link.display());
                ok = false;
                continue;
            }
        }
        match std::os::unix::fs::symlink(&exe, &link) {
            Ok(()) => println!("{} -> {}", link.display(), exe.display()),
            Err(e) => {
                eprintln!("error: cannot make {}: {e}", link.display());
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
