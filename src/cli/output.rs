//! What the CLI shows: logs through tracing (text or JSON), progress bars on
//! a terminal, and printing of results.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::{Global, LogFormat};
use crate::engine::movers::VolumeProgress;
use crate::engine::progress::Progress;

pub fn init_logging(g: &Global) {
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match g.log_format {
        LogFormat::Json => b.json().with_current_span(false).init(),
        // With -vv, text lines carry the time since start, to see where a
        // run spends it.
        LogFormat::Text if g.verbose >= 2 => b
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_target(false)
            .compact()
            .init(),
        LogFormat::Text => b.without_time().with_target(false).compact().init(),
    }
}

/// Shows a progress bar while an operation runs, when stderr is a terminal
/// and the output is for people.
pub struct Bar {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    /// Whether progress is shown at all (interactive runs only).
    pub fn visible(g: &Global) -> bool {
        !(g.json || g.quiet || g.no_progress || !std::io::stderr().is_terminal())
    }

    pub fn start(g: &Global, progress: &Arc<Progress>, verb: &'static str) -> Self {
        if !Self::visible(g) {
            return Bar {
                bar: None,
                task: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(verb);
        let (b, p) = (bar.clone(), progress.clone());
        let task = tokio::spawn(async move {
            loop {
                let (files, bytes, files_total, bytes_total, final_) = p.snapshot();
                b.set_length(bytes_total.max(bytes));
                b.set_position(bytes);
                b.set_message(if final_ {
                    format!("{files}/{files_total} files")
                } else {
                    format!("{files} files")
                });
                tokio::time::sleep(Duration::from_millis(125)).await;
            }
        });
        Bar {
            bar: Some(bar),
            task: Some(task),
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// One line per volume while mover Jobs run (bytes, rate, time), when
/// stderr is a terminal and the output is for people; the lines stay.
pub struct VolumeBars {
    task: Option<tokio::task::JoinHandle<()>>,
    lines: Option<Arc<VolumeLines>>,
}

struct VolumeLines {
    multi: MultiProgress,
    progress: Arc<VolumeProgress>,
    bars: std::sync::Mutex<BTreeMap<String, ProgressBar>>,
}

impl VolumeLines {
    fn draw(&self) {
        let mut bars = self.bars.lock().unwrap();
        for (name, s) in self.progress.snapshot() {
            let bar = bars.entry(name.clone()).or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new_spinner());
                let style = "{prefix:>32} {bytes:>11} {bytes_per_sec:>13} [{elapsed}] {msg}";
                b.set_style(ProgressStyle::with_template(style).expect("valid template"));
                b.set_prefix(name);
                b
            });
            if bar.is_finished() {
                continue;
            }
            bar.set_position(s.bytes);
            bar.set_message(format!("{} files", s.files));
            match s.done {
                Some(true) => bar.finish_with_message(format!("{} files, done", s.files)),
                Some(false) => bar.finish_with_message("failed"),
                None => {}
            }
        }
    }
}

impl VolumeBars {
    pub fn start(g: &Global, progress: &Arc<VolumeProgress>) -> Self {
        if !Bar::visible(g) {
            return VolumeBars {
                task: None,
                lines: None,
            };
        }
        let lines = Arc::new(VolumeLines {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)),
            progress: progress.clone(),
            bars: Default::default(),
        });
        let l = lines.clone();
        let task = tokio::spawn(async move {
            loop {
                l.draw();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        VolumeBars {
            task: Some(task),
            lines: Some(lines),
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(l) = self.lines {
            l.draw();
        }
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}

/// A command's result: serialized as is for `--json`, or shown as text.
/// Human output goes to stdout; warnings about parts of the work go to
/// stderr (`warnings`), so that `--json` output stays one document.
pub trait Render: serde::Serialize {
    /// The text shown on stdout.
    fn text(&self) -> String;
    /// Lines for stderr (warnings, entries not done), shown in both modes'
    /// human form only.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// The report's Prometheus metrics (docs/metrics.md), for
    /// `--metrics-file` and `--metrics-push`; none by default. A command's
    /// report adds its own families here (`ferry_forget_*` and
    /// `ferry_prune_*` belong on the retention reports).
    fn metrics(&self, _m: &mut crate::metrics::Registry) {}
}

/// Prints a report as `--json` or text.
pub fn emit<R: Render>(g: &Global, r: &R) {
    super::metrics::add(|m| r.metrics(m));
    if g.json {
        print_json(r);
        return;
    }
    print!("{}", r.text());
    for w in r.warnings() {
        eprintln!("{w}");
    }
}
