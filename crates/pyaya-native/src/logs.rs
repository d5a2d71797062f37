//! Receives aya-log records from the object's `AYA_LOGS` ring buffer and hands them to a Python callable.

use std::sync::{Arc, Mutex, PoisonError};

use log::{Level, Log, Metadata, Record};

/// One formatted record from `aya-log-ebpf`'s macros.
pub struct LogRecord {
    /// Python `logging` level number.
    pub level: u8,
    pub target: String,
    pub message: String,
}

/// A `log::Log` that queues records instead of printing them, so they can reach Python once the GIL is held.
#[derive(Clone, Default)]
pub struct LogQueue {
    records: Arc<Mutex<Vec<LogRecord>>>,
}

impl LogQueue {
    pub fn take(&self) -> Vec<LogRecord> {
        std::mem::take(&mut *self.records.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

const fn python_level(level: Level) -> u8 {
    match level {
        Level::Error => 40,
        Level::Warn => 30,
        Level::Info => 20,
        Level::Debug => 10,
        Level::Trace => 5,
    }
}

impl Log for LogQueue {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let entry = LogRecord {
            level: python_level(record.level()),
            target: record.target().to_owned(),
            message: record.args().to_string(),
        };
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }

    fn flush(&self) {}
}
