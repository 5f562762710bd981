//! Replays the fuzzer's corpus for the `statement` target
//! (`fuzz/corpus/statement`): every input the fuzzer kept still runs
//! without a crash, a hang or a panic.

#[test]
fn the_statement_fuzz_corpus_replays_without_a_crash() {
    sluice_test_support::fuzz::replay("statement", sluice_planner::fuzzing::statement);
}
