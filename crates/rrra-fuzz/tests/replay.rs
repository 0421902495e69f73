//! The seed-corpus replay of the test suite: every committed seed and crasher of every
//! target, then a few hundred deterministic mutants of them, must be accepted or rejected
//! with an error naming the file and line, never panic. The long campaign is
//! `cargo xtask fuzz`.

use rrra_fuzz::{TARGETS, replay};

/// Mutants per target in the suite (the campaign runs millions).
const MUTANTS: usize = 300;

#[test]
fn seeds_crashers_and_mutants_are_read_or_rejected_with_a_location() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let dir = tempfile::tempdir().unwrap();
        let report = replay(target, dir.path(), MUTANTS, 42).unwrap();
        assert!(
            report.runs > MUTANTS as u64,
            "{}: seeds were run",
            target.name
        );
        for (input, verdict) in report.findings {
            failures.push(format!("{} / {input}: {verdict:?}", target.name));
        }
    }
    assert!(failures.is_empty(), "findings:\n{}", failures.join("\n"));
}
