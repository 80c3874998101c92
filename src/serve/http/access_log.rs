//! The text log format, with a short path for the access log's one line per request.
//!
//! tracing-subscriber's `Full` format paints every field name, `=` sign, level and target
//! through its ANSI styler even when colours are off, which cost a quarter of the user-space
//! instructions of a cached playlist request (callgrind). An `access` event without colours
//! and outside any span is written here directly, byte for byte as `Full` writes it (a unit
//! test compares the two); every other event goes to `Full`. Timestamps are tracing-subscriber's
//! too (RFC 3339 in UTC with microseconds), their date and time of day formatted once a second.
//!
//! [`LogWriter`] writes the access lines to standard error in batches when it is not a
//! terminal: a `write` system call per request cost about as much as the rest of a cached
//! playlist's user-space work.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The target of the access log's events.
pub const TARGET: &str = "access";

/// tracing-subscriber's default text format, writing access events without its styler.
pub struct TextFormat<T = Rfc3339Micros> {
    full: Format<Full, T>,
    timer: T,
}

impl Default for TextFormat {
    fn default() -> Self {
        TextFormat::with_timer(Rfc3339Micros)
    }
}

impl<T: FormatTime + Clone> TextFormat<T> {
    pub fn with_timer(timer: T) -> Self {
        TextFormat { full: Format::default().with_timer(timer.clone()), timer }
    }
}

impl<S, N, T> FormatEvent<S, N> for TextFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let plain = !writer.has_ansi_escapes()
            && meta.target() == TARGET
            && *meta.level() == Level::INFO
            && ctx.event_scope().is_none()
            // Names the default field writer treats specially.
            && meta.fields().iter().all(|f| f.name() != "message" && !f.name().starts_with("r#") && !f.name().starts_with("log."));
        if !plain {
            return self.full.format_event(ctx, writer, event);
        }
        if self.timer.format_time(&mut writer).is_err() {
            writer.write_str("<unknown time>")?;
        }
        // As `Full`: timestamp, level padded to five, target.
        writer.write_str("  INFO access: ")?;
        let mut fields = Fields { writer: &mut writer, first: true, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Access lines not yet written to standard error, oldest first.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Pending bytes that are written at once.
const BATCH_BYTES: usize = 32 * 1024;
/// The longest an access line waits before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Standard error for log lines. When `batched`, access lines gather in memory and are written
/// once [`BATCH_BYTES`] are pending, or by a thread every [`FLUSH_EVERY`]; any other line first
/// writes the pending ones, so lines keep their order and a warning is never held back.
#[derive(Debug, Clone, Copy)]
pub struct LogWriter {
    batched: bool,
}

impl LogWriter {
    /// Starts the thread that writes pending access lines when `batched`.
    pub fn new(batched: bool) -> Self {
        let flusher = std::thread::Builder::new().name("access-log".into());
        // Without the thread (none can be started) every access line is written at once.
        let batched = batched
            && flusher
                .spawn(|| loop {
                    std::thread::sleep(FLUSH_EVERY);
                    write_pending(&mut lock_pending(), &[]);
                })
                .is_ok();
        LogWriter { batched }
    }
}

/// Writes the pending access lines (before the process exits).
pub fn flush() {
    write_pending(&mut lock_pending(), &[]);
}

fn lock_pending() -> std::sync::MutexGuard<'static, Vec<u8>> {
    // A poisoned buffer still holds whole lines: only appends and writes touch it.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `pending` and then `line` to standard error in one call. A failed write is dropped,
/// as tracing-subscriber drops it.
fn write_pending(pending: &mut Vec<u8>, line: &[u8]) {
    if pending.is_empty() {
        if !line.is_empty() {
            let _ = std::io::stderr().write_all(line);
        }
        return;
    }
    pending.extend_from_slice(line);
    let _ = std::io::stderr().write_all(pending);
    pending.clear();
}

/// One log line's destination, from [`LogWriter`].
pub struct LineWriter {
    batched: bool,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = lock_pending();
        if self.batched {
            pending.extend_from_slice(line);
            if pending.len() >= BATCH_BYTES {
                write_pending(&mut pending, &[]);
            }
        } else {
            write_pending(&mut pending, line);
        }
        Ok(line.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter { batched: false }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        LineWriter { batched: self.batched && meta.target() == TARGET && *meta.level() == Level::INFO }
    }
}

/// The time as tracing-subscriber's `SystemTime` writes it, e.g. `2026-12-07T22:16:22.142360Z`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rfc3339Micros;

impl FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        write_time(w, now)
    }
}

fn write_time(w: &mut impl fmt::Write, since_epoch: Duration) -> fmt::Result {
    thread_local! {
        /// The last second formatted on this thread, and its text up to the seconds.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let secs = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            text.clear();
            let time = chrono::DateTime::from_timestamp(secs.min(i64::MAX as u64) as i64, 0).unwrap_or_default();
            write!(text, "{}", time.format("%Y-%m-%dT%H:%M:%S"))?;
            *second = secs;
        }
        w.write_str(text)
    })?;
    let mut fraction = *b".000000Z";
    let mut micros = since_epoch.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    w.write_str(std::str::from_utf8(&fraction).unwrap_or_default())
}

/// `name=value` pairs separated by spaces, values in their `Debug` form, as tracing-subscriber's
/// default field writer writes them without colours.
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = write!(self.writer, "{separator}{}={value:?}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone)]
    struct FixedTime;
    impl FormatTime for FixedTime {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-07T22:16:22.142360Z")
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn events() {
        let peer: std::net::SocketAddr = "127.0.0.1:36392".parse().unwrap();
        let path = "/loc/long-asset.ism/QualityLevels(401000)/Manifest(video,format=m3u8-cmaf)";
        tracing::info!(target: "access", peer = %peer, method = %http::Method::GET, path = %path,
            status = 200u16, bytes = 208540u64, kind = "pla\"ylist", micros = 19u64,);
        tracing::warn!(target: "access", peer = %peer, status = 503u16);
        tracing::info!(target: "access", message = "hello", r#type = "x");
        tracing::info!(answer = 42, "a message with {}", "arguments");
        tracing::info!(target: "access", "only a message");
    }

    #[test]
    fn times_are_rfc3339_with_microseconds() {
        for (secs, nanos) in
            [(0, 0), (1_796_681_782, 142_360_999), (1_796_681_782, 999_999_000), (4_102_444_799, 1_000)]
        {
            let mut ours = String::new();
            write_time(&mut ours, Duration::new(secs, nanos)).unwrap();
            let chrono = chrono::DateTime::from_timestamp(secs as i64, nanos).unwrap();
            assert_eq!(ours, chrono.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        }
        let now = |timer: &dyn FormatTime| {
            let mut text = String::new();
            timer.format_time(&mut Writer::new(&mut text)).unwrap();
            chrono::DateTime::parse_from_rfc3339(&text).unwrap()
        };
        let theirs = now(&tracing_subscriber::fmt::time::SystemTime);
        let ours = now(&Rfc3339Micros);
        assert!((ours - theirs).num_milliseconds().abs() < 1000, "{ours} vs {theirs}");
    }

    /// Every line is what tracing-subscriber's own `Full` format writes.
    #[test]
    fn lines_are_those_of_the_full_format() {
        let run = |ours: bool| {
            let out = Captured::default();
            let sink = out.clone();
            let builder = tracing_subscriber::fmt().with_ansi(false).with_writer(move || sink.clone());
            if ours {
                tracing::subscriber::with_default(
                    builder.event_format(TextFormat::with_timer(FixedTime)).finish(),
                    events,
                );
            } else {
                tracing::subscriber::with_default(builder.with_timer(FixedTime).finish(), events);
            }
            let bytes = out.0.lock().unwrap().clone();
            String::from_utf8(bytes).unwrap()
        };
        let (ours, theirs) = (run(true), run(false));
        assert_eq!(ours, theirs);
        assert_eq!(ours.lines().count(), 5);
        assert!(ours.starts_with(
            "2026-12-07T22:16:22.142360Z  INFO access: peer=127.0.0.1:36392 method=GET path=/loc/long-asset.ism/"
        ));
    }
}
