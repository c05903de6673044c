//! Progress bars for long jobs: drawn on stderr when it is a terminal, absent otherwise (so
//! logs and pipes stay clean).

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar that is a no-op when stderr is not a terminal.
pub struct Bar {
    bar: Option<ProgressBar>,
    phase: Mutex<String>,
}

impl Bar {
    pub fn new(job: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{prefix} {msg} [{bar:30}] {pos}/{len} ({eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(job.to_owned());
            b
        });
        Self {
            bar,
            phase: Mutex::new(String::new()),
        }
    }

    pub fn set(&self, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(done);
        }
    }

    pub fn phase(&self, phase: &str, done: u64, total: u64) {
        if let Some(b) = &self.bar {
            let mut p = self.phase.lock().expect("phase lock");
            if *p != phase {
                *p = phase.to_owned();
                b.set_message(phase.to_owned());
            }
        }
        self.set(done, total);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
