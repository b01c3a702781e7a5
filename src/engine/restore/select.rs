//! Which entries a restore writes, decided as the walk goes: nothing
//! excluded (nor below an excluded directory, which is not walked), and,
//! with includes, what matches or is below a match, plus the directories
//! leading to it. Such a directory is given only once something below it is
//! selected, so memory is bounded by the path depth.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::engine::walk::{Entry, SnapPath, Step};
use crate::engine::EngineResult;
use crate::format::tree::NodeKind;

/// The `--include` and `--exclude` patterns.
pub struct Patterns {
    includes: globset::GlobSet,
    excludes: globset::GlobSet,
}

impl Patterns {
    pub fn new(includes: &[String], excludes: &[String]) -> EngineResult<Self> {
        Ok(Patterns {
            includes: crate::engine::glob_set(includes)?,
            excludes: crate::engine::glob_set(excludes)?,
        })
    }

    /// Whether `path` itself is excluded (what is below it is then too).
    pub fn excluded(&self, path: &SnapPath) -> bool {
        !self.excludes.is_empty() && matches(&self.excludes, path.as_bytes())
    }

    /// Whether `path` itself is included (everything is without includes).
    fn included(&self, path: &SnapPath) -> bool {
        self.includes.is_empty() || matches(&self.includes, path.as_bytes())
    }
}

/// Whether a pattern set matches `path` or its last component, byte for
/// byte (patterns match names that are not UTF-8 too).
fn matches(set: &globset::GlobSet, path: &[u8]) -> bool {
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let as_path = |b: &[u8]| Path::new(OsStr::from_bytes(b)).to_path_buf();
    set.is_match(as_path(path)) || set.is_match(as_path(name))
}

/// What a restore does, in order.
#[derive(Debug)]
pub enum Event {
    /// Make this directory (its parent was given before it).
    Dir(Entry),
    /// The last directory given and not yet left has all its contents given.
    Leave,
    /// A file, link or special file in the last directory given.
    Item(Entry),
    /// A tree that could not be read, or a path too long.
    Unreadable(SnapPath, String),
}

/// A directory the walk is in.
struct Open {
    /// Until the directory is given (`None` once given, or when excluded).
    entry: Option<Entry>,
    /// It, or a directory above it, matches an include.
    included: bool,
    excluded: bool,
}

/// Turns the steps of a walk into [`Event`]s.
pub struct Selection<'a> {
    patterns: &'a Patterns,
    open: Vec<Open>,
}

impl<'a> Selection<'a> {
    pub fn new(patterns: &'a Patterns) -> Self {
        Selection {
            patterns,
            open: Vec::new(),
        }
    }

    /// The events of one walk step, added to `out`.
    pub fn feed(&mut self, step: Step, out: &mut Vec<Event>) {
        match step {
            Step::Entry(e) => self.entry(e, out),
            Step::Leave => {
                let o = self.open.pop().expect("a Leave follows its directory");
                // A directory given is left; one never given was not needed.
                if o.entry.is_none() && !o.excluded {
                    out.push(Event::Leave);
                }
            }
            Step::Error(path, error) => {
                if !self.patterns.excluded(&path) {
                    out.push(Event::Unreadable(path, error));
                }
            }
        }
    }

    fn entry(&mut self, e: Entry, out: &mut Vec<Event>) {
        let is_dir = e.node.kind == NodeKind::Dir;
        if self.patterns.excluded(&e.path) {
            if is_dir {
                self.open.push(Open {
                    entry: None,
                    included: false,
                    excluded: true,
                });
            }
            return;
        }
        let included =
            self.open.last().is_some_and(|o| o.included) || self.patterns.included(&e.path);
        if is_dir {
            self.open.push(Open {
                entry: Some(e),
                included,
                excluded: false,
            });
            if included {
                self.give_open(out);
            }
        } else if included {
            self.give_open(out);
            out.push(Event::Item(e));
        }
    }

    /// Gives the open directories not given yet, parents first.
    fn give_open(&mut self, out: &mut Vec<Event>) {
        let from = self
            .open
            .iter()
            .rposition(|o| o.entry.is_none())
            .map_or(0, |i| i + 1);
        for o in &mut self.open[from..] {
            out.extend(o.entry.take().map(Event::Dir));
        }
    }
}
