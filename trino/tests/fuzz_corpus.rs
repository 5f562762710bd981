//! Replays the fuzzer's corpus for the `trino_request` target
//! (`fuzz/corpus/trino_request`): every input the fuzzer kept still runs
//! without a crash, a hang or a panic.

#[test]
fn the_trino_request_fuzz_corpus_replays_without_a_crash() {
    sluice_test_support::fuzz::replay("trino_request", sluice_trino::fuzzing::request);
}
