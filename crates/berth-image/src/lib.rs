//! berth-image: content-addressed blobs, image references and formats, secure layer unpacking
//! and the snapshotter that turns layers into container root filesystems.
//!
//! Knows nothing of containers: the snapshotter returns mount descriptions.

pub mod archive;
pub mod images;
pub mod layer;
pub mod reference;
pub mod snapshot;
pub mod store;

pub use archive::{ArchiveError, ImportChanges, Imported, LoadedImage};
pub use images::{chain_ids, GcStats, HistoryEntry, ImageError, ImageRecord, ImageStore, Removed};
pub use reference::{Reference, ReferenceError};
pub use store::{ContentStore, Digest, StoreError};

/// Progress of a long operation (load, save, import, unpack), for a bar on a terminal.
///
/// `current` and `total` count bytes of `item` unless stated otherwise; `total` is `None` when
/// the size is not known in advance (a stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// What is happening: "reading archive", "verifying layer", "writing layer", ...
    pub action: &'static str,
    /// What it happens to: a digest, a path or a reference.
    pub item: String,
    /// Work done so far.
    pub current: u64,
    /// Total work, when known.
    pub total: Option<u64>,
}

/// An optional progress callback, as long operations take it.
pub type ProgressFn<'a> = Option<&'a mut dyn FnMut(Progress)>;

/// Call an optional progress callback.
pub(crate) fn report(
    progress: &mut ProgressFn<'_>,
    action: &'static str,
    item: &str,
    current: u64,
    total: Option<u64>,
) {
    if let Some(cb) = progress.as_mut() {
        cb(Progress {
            action,
            item: item.to_string(),
            current,
            total,
        });
    }
}

pub mod bootstrap;
