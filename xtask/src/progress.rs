//! Renders library progress reports: indicatif bars with rate and ETA when stderr is a
//! terminal; otherwise (nohup, Slurm, `> log 2>&1`) plain log lines, one when a task starts,
//! one every `RRRA_PROGRESS_SECS` seconds (default 10) while it runs, whether or not an item
//! finished in between, and one when it ends, each with items/s, ETA and the task's latest
//! message (a training run's loss, learning rate and examples/s).

use std::io::IsTerminal;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rrra_common::progress::{Progress, Task};

/// Seconds between two log lines of a running task when stderr is not a terminal.
const DEFAULT_LOG_SECS: u64 = 10;

/// Progress for the command line: bars on a terminal, log lines elsewhere.
pub enum Bars {
    Terminal(MultiProgress),
    Log(Duration),
}

impl Bars {
    pub fn new() -> Self {
        if std::io::stderr().is_terminal() {
            Bars::Terminal(MultiProgress::with_draw_target(
                ProgressDrawTarget::stderr_with_hz(4),
            ))
        } else {
            let secs = std::env::var("RRRA_PROGRESS_SECS")
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|&s| s > 0)
                .unwrap_or(DEFAULT_LOG_SECS);
            Bars::Log(Duration::from_secs(secs))
        }
    }
}

struct Bar(ProgressBar);

impl Task for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
    fn set_message(&self, message: &str) {
        self.0.set_message(message.to_string());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl Progress for Bars {
    fn task(&self, label: &str, total: Option<u64>) -> Box<dyn Task> {
        match self {
            Bars::Terminal(multi) => {
                let bar = match total {
                    Some(n) => ProgressBar::new(n).with_style(
                        ProgressStyle::with_template(
                            "  {prefix:<28} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta} {msg}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    ),
                    None => ProgressBar::no_length().with_style(
                        ProgressStyle::with_template(
                            "  {prefix:<28} {spinner} {human_pos} {per_sec} {msg}",
                        )
                        .expect("valid template"),
                    ),
                };
                Box::new(Bar(multi.add(bar.with_prefix(label.to_string()))))
            }
            Bars::Log(every) => Box::new(LogTask::start(label, total, *every, Sink::Stderr)),
        }
    }
}

/// Where log lines go: stderr, or (in tests) a buffer.
#[derive(Clone)]
enum Sink {
    Stderr,
    #[cfg(test)]
    Buffer(Arc<Mutex<Vec<String>>>),
}

impl Sink {
    fn write(&self, line: String) {
        match self {
            Sink::Stderr => eprintln!("{line}"),
            #[cfg(test)]
            Sink::Buffer(lines) => lines.lock().expect("not poisoned").push(line),
        }
    }
}

/// What a log task's lines are made of.
struct State {
    label: String,
    total: Option<u64>,
    start: Instant,
    done: std::sync::atomic::AtomicU64,
    message: Mutex<String>,
}

impl State {
    fn line(&self, end: bool) -> String {
        let done = self.done.load(std::sync::atomic::Ordering::Relaxed);
        let secs = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let mut line = format!("  [{}] {}: ", clock(secs), self.label);
        match self.total {
            Some(total) => {
                let pct = 100.0 * done as f64 / total.max(1) as f64;
                line.push_str(&format!("{done}/{total} ({pct:.1}%), {rate:.1}/s"));
                if end {
                    line.push_str(", done");
                } else if done > 0 && done < total {
                    let eta = (total - done) as f64 / rate;
                    line.push_str(&format!(", ETA {}", clock(eta)));
                }
            }
            None => line.push_str(&format!(
                "{done}, {rate:.1}/s{}",
                if end { ", done" } else { "" }
            )),
        }
        let message = self.message.lock().expect("not poisoned");
        if !message.is_empty() {
            line.push_str(" | ");
            line.push_str(&message);
        }
        line
    }
}

/// `h:mm:ss`.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A task reported as log lines by a thread of its own, so that a line comes every
/// interval even while one item takes longer than that.
struct LogTask {
    state: Arc<State>,
    stop: Option<Sender<()>>,
    ticker: Option<JoinHandle<()>>,
    sink: Sink,
}

impl LogTask {
    fn start(label: &str, total: Option<u64>, every: Duration, sink: Sink) -> Self {
        let state = Arc::new(State {
            label: label.to_string(),
            total,
            start: Instant::now(),
            done: Default::default(),
            message: Mutex::new(String::new()),
        });
        sink.write(format!(
            "  [{}] {label}: started{}",
            clock(0.0),
            total.map(|t| format!(", {t} items")).unwrap_or_default()
        ));
        let (stop, stopped) = channel::<()>();
        let ticker = {
            let state = Arc::clone(&state);
            let sink = sink.clone();
            std::thread::spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    sink.write(state.line(false));
                }
            })
        };
        LogTask {
            state,
            stop: Some(stop),
            ticker: Some(ticker),
            sink,
        }
    }
}

impl Task for LogTask {
    fn inc(&self, n: u64) {
        self.state
            .done
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn set_message(&self, message: &str) {
        *self.state.message.lock().expect("not poisoned") = message.to_string();
    }
}

impl Drop for LogTask {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
        self.sink.write(self.state.line(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_come_every_interval_even_without_progress() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let task = LogTask::start(
            "encode corpus",
            Some(100),
            Duration::from_millis(50),
            Sink::Buffer(Arc::clone(&lines)),
        );
        task.inc(25);
        task.set_message("loss 1.2345");
        // No item finishes for several intervals: lines keep coming.
        std::thread::sleep(Duration::from_millis(400));
        task.inc(75);
        drop(task);
        let lines = lines.lock().unwrap().clone();
        assert!(
            lines[0].contains("encode corpus: started, 100 items"),
            "{lines:?}"
        );
        let ticks: Vec<&String> = lines[1..lines.len() - 1].iter().collect();
        assert!(ticks.len() >= 3, "{lines:?}");
        assert!(
            ticks.iter().all(|l| l.contains("25/100 (25.0%)")
                && l.contains("ETA")
                && l.ends_with("| loss 1.2345")),
            "{lines:?}"
        );
        let last = lines.last().unwrap();
        assert!(
            last.contains("100/100 (100.0%)") && last.contains("done"),
            "{last}"
        );
    }

    #[test]
    fn clock_is_hours_minutes_seconds() {
        assert_eq!(clock(0.4), "0:00:00");
        assert_eq!(clock(61.0), "0:01:01");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
