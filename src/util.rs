//! Small helpers shared by several layers: host and user names, sizes.

use std::ffi::CStr;

/// This machine's host name, or `FERRY_HOST` when set (pods get random
/// host names; a stable one keeps parent selection working).
pub fn hostname() -> String {
    if let Ok(h) = std::env::var("FERRY_HOST") {
        if !h.is_empty() {
            return h;
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "unknown".into();
    }
    CStr::from_bytes_until_nul(&buf)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn username() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The name of a user id, from the password database.
pub fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; the result points into buf.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: pw_name is a NUL-terminated string inside buf.
    Some(
        unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The name of a group id, from the group database.
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; the result points into buf.
    let rc =
        unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: gr_name is a NUL-terminated string inside buf.
    Some(
        unsafe { CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Parses a size such as `512KiB`, `16MiB`, `1GiB`, `4096` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512KiB, 16MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Formats a byte count for people: `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Buffers kept for reuse, at most `max` of them: memory a process touches
/// for the first time is faulted in page by page, which on virtual machines
/// costs more than the work done in it.
pub struct Spares<T> {
    max: usize,
    kept: std::sync::Mutex<Vec<T>>,
}

impl<T> Spares<T> {
    pub const fn new(max: usize) -> Self {
        Spares {
            max,
            kept: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Of the kept buffers that fit (`fit` gives their size, or `None`),
    /// the smallest, if there is one: a small request leaves the large
    /// buffers to the large ones, so mixed sizes do not grow the pool.
    pub fn take(&self, fit: impl Fn(&T) -> Option<usize>) -> Option<T> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let (i, _) = kept
            .iter()
            .enumerate()
            .filter_map(|(i, b)| fit(b).map(|size| (i, size)))
            .min_by_key(|&(_, size)| size)?;
        Some(kept.swap_remove(i))
    }

    /// Keeps `buf` for reuse, unless `max` are kept already.
    pub fn keep(&self, buf: T) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < self.max {
            kept.push(buf);
        }
    }
}

/// A private anonymous mapping of `len` bytes (page-aligned, zero until
/// touched), or `None` if the system refuses it. The caller owns it and
/// gives it back with [`unmap`].
pub fn map_anonymous(len: usize) -> Option<std::ptr::NonNull<u8>> {
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    match p {
        libc::MAP_FAILED => None,
        p => std::ptr::NonNull::new(p.cast()),
    }
}

/// Gives back a mapping of [`map_anonymous`].
///
/// # Safety
/// `ptr` and `len` are those of one mapping, not used after this call.
pub unsafe fn unmap(ptr: std::ptr::NonNull<u8>, len: usize) {
    // SAFETY: the caller's promise.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
}

/// A time as listings show it: RFC 3339 in UTC, to the second.
pub fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A whole number of seconds in the largest unit that divides it: `30d`,
/// `12h`, `90s`.
pub fn human_seconds(s: u64) -> String {
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spares_give_the_smallest_buffer_that_fits() {
        let spares = super::Spares::new(3);
        for cap in [16usize, 1, 4, 8] {
            spares.keep(Vec::<u8>::with_capacity(cap)); // the fourth is not kept
        }
        let fit = |need: usize| move |b: &Vec<u8>| (b.capacity() >= need).then_some(b.capacity());
        assert_eq!(
            spares
                .take(fit(2))
                .map(|b| b.capacity() >= 4 && b.capacity() < 16),
            Some(true)
        );
        assert_eq!(spares.take(fit(17)), None);
        assert!(spares.take(fit(2)).is_some_and(|b| b.capacity() >= 16));
        assert!(spares
            .take(fit(0))
            .is_some_and(|b| b.capacity() >= 1 && b.capacity() < 4));
        assert!(spares.take(fit(0)).is_none());
    }

    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(super::parse_size("16 MiB").unwrap(), 16 << 20);
        assert_eq!(super::parse_size("100").unwrap(), 100);
        assert!(super::parse_size("1XB").is_err());
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
    }
}
