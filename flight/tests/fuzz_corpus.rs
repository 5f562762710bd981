//! Replays the fuzzer's corpus for the `ticket` target
//! (`fuzz/corpus/ticket`, grown by `scripts/fuzz.sh`): every input the
//! fuzzer kept still runs without a crash, a hang or a panic (one caught
//! and answered as an internal error counts too).

use std::sync::atomic::{AtomicBool, Ordering};

static PANICKED: AtomicBool = AtomicBool::new(false);

#[test]
fn the_ticket_fuzz_corpus_replays_without_a_crash() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ticket");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "the corpus is empty");
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        default_hook(info);
    }));
    for input in inputs {
        let data = std::fs::read(&input).expect("a corpus file");
        PANICKED.store(false, Ordering::SeqCst);
        sluice_flight::fuzzing::ticket(&data);
        assert!(
            !PANICKED.load(Ordering::SeqCst),
            "{} panicked",
            input.display()
        );
    }
}
