//! Progress for long work: a bar on a terminal, periodic log lines otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running progress display; stops when dropped or on [`Display::finish`].
#[derive(Debug)]
pub struct Display {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A live byte count.
pub type Counter = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Shows `counter` against `total` bytes (read live: the size is known only once the
/// source is open) until finished.
pub fn show(label: &'static str, total: Counter, counter: Counter) -> Display {
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let thread = std::thread::spawn(move || {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(label);
            while !stop.load(Ordering::Relaxed) {
                bar.set_length(total());
                bar.set_position(counter());
                std::thread::sleep(Duration::from_millis(200));
            }
            bar.set_position(counter());
            bar.finish();
        } else {
            let start = Instant::now();
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= Duration::from_secs(10) {
                    last = Instant::now();
                    let n = counter();
                    let total = total();
                    let secs = start.elapsed().as_secs_f64().max(0.001);
                    tracing::info!(
                        "{label}: {n} of {total} bytes ({:.1}%), {:.0} MB/s",
                        if total == 0 {
                            100.0
                        } else {
                            n as f64 * 100.0 / total as f64
                        },
                        n as f64 / secs / 1e6
                    );
                }
            }
        }
    });
    Display {
        done,
        thread: Some(thread),
    }
}

impl Display {
    /// Stops the display.
    pub fn finish(mut self) {
        self.stop();
    }
    fn stop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A counter closure over an atomic.
pub fn counter_of<T: Send + Sync + 'static>(owner: Arc<T>, field: fn(&T) -> &AtomicU64) -> Counter {
    Arc::new(move || field(&owner).load(Ordering::Relaxed))
}
