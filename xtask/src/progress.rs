//! Renders library progress reports as indicatif bars with rate and ETA.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rrra_common::progress::{Progress, Task};

pub struct Bars {
    multi: MultiProgress,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)),
        }
    }
}

struct Bar(ProgressBar);

impl Task for Bar {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl Progress for Bars {
    fn task(&self, label: &str, total: Option<u64>) -> Box<dyn Task> {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "  {prefix:<28} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::no_length().with_style(
                ProgressStyle::with_template("  {prefix:<28} {spinner} {human_pos} {per_sec}")
                    .expect("valid template"),
            ),
        };
        let bar = self.multi.add(bar.with_prefix(label.to_string()));
        Box::new(Bar(bar))
    }
}
