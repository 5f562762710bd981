//! Replay of the fuzzer's corpus (`fuzz/corpus/<target>`, grown by
//! `scripts/fuzz.sh`) in the normal test suite: every input the fuzzer
//! kept must still run without a crash, a hang or a panic (one caught and
//! answered as an internal error counts too).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `entry` on every input of `fuzz/corpus/<target>`.
///
/// # Panics
///
/// If the corpus is missing or empty, or an input panics.
pub fn replay(target: &str, entry: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "the corpus of {target} is empty");
    let panicked = Arc::new(AtomicBool::new(false));
    let default_hook = std::panic::take_hook();
    {
        let panicked = Arc::clone(&panicked);
        std::panic::set_hook(Box::new(move |info| {
            panicked.store(true, Ordering::SeqCst);
            default_hook(info);
        }));
    }
    for input in inputs {
        let data = std::fs::read(&input).expect("a corpus file");
        panicked.store(false, Ordering::SeqCst);
        entry(&data);
        assert!(
            !panicked.load(Ordering::SeqCst),
            "{} panicked",
            input.display()
        );
    }
}
