// SPDX-License-Identifier: Apache-2.0
// A `tracing` subscriber that keeps the text of every span's and event's fields, at every
// level and from every crate (the dependencies' too): for checks that nothing secret reaches
// a seller's subscriber.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Everything recorded, as text.
#[derive(Clone, Default)]
pub struct Everything {
    text: Arc<Mutex<String>>,
    next: Arc<AtomicU64>,
}

struct Text<'a>(&'a mut String);

impl Visit for Text<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?}\n", field.name()));
    }
}

impl Everything {
    /// Installs it as the process's subscriber (once a test binary: every thread, the
    /// runtime's too).
    pub fn install_global() -> Everything {
        let e = Everything::default();
        tracing::subscriber::set_global_default(e.clone()).expect("no subscriber yet");
        e
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    fn keep(&self, name: &str, record: impl FnOnce(&mut Text<'_>)) {
        let mut s = String::new();
        s.push_str(name);
        s.push('\n');
        record(&mut Text(&mut s));
        self.text.lock().unwrap().push_str(&s);
    }
}

impl Subscriber for Everything {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.keep(span.metadata().name(), |t| span.record(t));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        self.keep("record", |t| values.record(t));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        self.keep(event.metadata().target(), |t| event.record(t));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
