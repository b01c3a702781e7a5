//! Where the repository password comes from: --password-command,
//! --password-file, FERRY_PASSWORD, FERRY_PASSWORD_FILE,
//! FERRY_PASSWORD_COMMAND, then a prompt on the terminal, in that order.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::args::Global;

fn from_file(p: &Path) -> Result<Vec<u8>> {
    let s = std::fs::read(p).with_context(|| format!("reading password file {}", p.display()))?;
    let line = s.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

fn from_command(cmd: &str) -> Result<Vec<u8>> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .with_context(|| format!("running password command {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "password command {cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let line = out.stdout.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(line.to_vec())
}

/// Reads a line from the terminal with echo off.
pub fn prompt(label: &str) -> Result<Vec<u8>> {
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for a password on")?;
    use std::os::unix::io::AsRawFd;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr/tcsetattr on a valid fd.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let saved = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
    let old = term;
    if saved {
        term.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
    }
    let mut w = &tty;
    write!(w, "{label}")?;
    w.flush()?;
    let mut line = String::new();
    let r = std::io::BufReader::new(&tty).read_line(&mut line);
    if saved {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    writeln!(w)?;
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).as_bytes().to_vec())
}

/// The password to open (or, with `confirm`, to create) a repository.
pub fn password(g: &Global, confirm: bool) -> Result<Vec<u8>> {
    let pw = if let Some(c) = &g.password_command {
        from_command(c)?
    } else if let Some(f) = &g.password_file {
        from_file(f)?
    } else if let Ok(p) = std::env::var("FERRY_PASSWORD") {
        p.into_bytes()
    } else if let Ok(f) = std::env::var("FERRY_PASSWORD_FILE") {
        from_file(Path::new(&f))?
    } else if let Ok(c) = std::env::var("FERRY_PASSWORD_COMMAND") {
        from_command(&c)?
    } else if std::io::stdin().is_terminal() {
        let p = prompt("repository password: ")?;
        if confirm && prompt("enter it again: ")? != p {
            bail!("the two passwords differ");
        }
        p
    } else {
        bail!(
            "no password given: set FERRY_PASSWORD, or pass --password-file or --password-command"
        );
    };
    if pw.is_empty() {
        bail!("the password is empty; ferry refuses empty passwords");
    }
    Ok(pw)
}
