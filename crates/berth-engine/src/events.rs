//! The event bus: every event is kept in a bounded history (for `events --since`) and sent
//! to each live subscriber. Events are a log, not state: nothing here is needed to find a
//! container after a restart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc;
use std::sync::Mutex;

use crate::inner::lock;
use crate::model::Event;

/// How many past events are kept.
const HISTORY: usize = 1024;

pub(crate) struct EventBus {
    state: Mutex<BusState>,
}

struct BusState {
    history: VecDeque<Event>,
    subscribers: Vec<mpsc::Sender<Event>>,
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus {
            state: Mutex::new(BusState {
                history: VecDeque::new(),
                subscribers: Vec::new(),
            }),
        }
    }

    pub fn publish(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let e = Event {
            kind: kind.to_string(),
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            time_nano: crate::now_nanos(),
        };
        let mut s = lock(&self.state);
        if s.history.len() == HISTORY {
            s.history.pop_front();
        }
        s.history.push_back(e.clone());
        s.subscribers.retain(|tx| tx.send(e.clone()).is_ok());
    }

    /// Past events at or after `since` (nanoseconds; 0: none), and a feed of new ones.
    pub fn subscribe(&self, since: i64) -> (Vec<Event>, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        let mut s = lock(&self.state);
        let past = if since > 0 {
            s.history
                .iter()
                .filter(|e| e.time_nano >= since)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        s.subscribers.push(tx);
        (past, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_and_live_feed() {
        let bus = EventBus::new();
        bus.publish("container", "create", "a", BTreeMap::new());
        let (past, rx) = bus.subscribe(1);
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].action, "create");
        bus.publish("container", "start", "a", BTreeMap::new());
        assert_eq!(rx.recv().unwrap().action, "start");
        let (past, _rx) = bus.subscribe(0);
        assert!(past.is_empty());
    }
}
