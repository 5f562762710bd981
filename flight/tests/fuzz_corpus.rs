//! Replays the fuzzer's corpus for the `ticket` target
//! (`fuzz/corpus/ticket`): every input the fuzzer kept still runs
//! without a crash, a hang or a panic.

#[test]
fn the_ticket_fuzz_corpus_replays_without_a_crash() {
    sluice_test_support::fuzz::replay("ticket", sluice_flight::fuzzing::ticket);
}
